/**
 * A fine-tune job's status: the values the API reports (REST enum, GraphQL) and the ones in which
 * a job has ended. Its own module because the response shapes (fine-tune.dto.ts) and the queue
 * types (fine-tune.types.ts) both need it.
 */
export const FINE_TUNE_STATUSES = [
  'queued',
  'running',
  'cancelling',
  'succeeded',
  'failed',
  'cancelled',
] as const;
export type FineTuneStatus = (typeof FINE_TUNE_STATUSES)[number];

export const TERMINAL: ReadonlySet<FineTuneStatus> = new Set(['succeeded', 'failed', 'cancelled']);
