/** A fine-tune job's files outside the queue, removed once nothing can use them any more. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { FineTuneJobData } from './fine-tune.types';

/**
 * Removes the job's directory JOBS_DIR/<id>/ (its checkpoints) and its staging dir in MODELS_DIR.
 * Called when a job succeeded or was cancelled, and when a finished job is dropped from the queue
 * (JOBS_KEEP): a failed job keeps its files until then.
 */
export async function removeJobFiles(
  d: Pick<FineTuneJobData, 'checkpointDir' | 'stagingDir'>,
): Promise<void> {
  await fs.rm(d.stagingDir, { recursive: true, force: true });
  await fs.rm(path.dirname(d.checkpointDir), { recursive: true, force: true });
}
