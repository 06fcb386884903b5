import type { FineTuneProgress } from '../../prg/training/job-api';
import type { JobRunOutcome } from './fine-tune.dto';
import type { JobRun, StoredProgress } from './fine-tune.types';

/**
 * Folds one progress report into what a job stores: the latest report, plus one history entry per
 * finished epoch. The trainer reports an epoch's end with stepsPerEpoch = 0 (its mean loss and
 * evaluation metrics); a step report counts as an epoch end only when step >= stepsPerEpoch
 * (1-based step numbering). A resumed job re-reporting an epoch replaces that epoch's entry.
 * `latest` is the last step report.
 */
export function recordProgress(stored: StoredProgress, p: FineTuneProgress): StoredProgress {
  const history = [...stored.history];
  const epochEnd = p.stepsPerEpoch > 0 ? p.step >= p.stepsPerEpoch : true;
  if (epochEnd) {
    const entry = {
      epoch: p.epoch,
      ...(p.loss !== undefined ? { loss: p.loss } : {}),
      ...(p.metrics ? { metrics: p.metrics } : {}),
    };
    const i = history.findIndex((h) => h.epoch === p.epoch);
    if (i >= 0) history[i] = { ...history[i], ...entry };
    else history.push(entry);
    history.sort((a, b) => a.epoch - b.epoch);
  }
  // `latest` stays the last step report (an epoch-end report has no step position), with the
  // overall fraction moved on.
  const latest =
    p.stepsPerEpoch === 0 && stored.latest
      ? { ...stored.latest, progress: Math.max(stored.latest.progress, p.progress) }
      : p;
  return { ...stored, latest, history };
}

/**
 * A new run of a job on `worker`. A previous run still open (no outcome) ended without its worker
 * saying so: the worker was killed or lost its lock, and the queue handed the job on.
 */
export function startRun(runs: JobRun[], worker: string): JobRun[] {
  const now = new Date().toISOString();
  const closed = runs.map((r) =>
    r.outcome
      ? r
      : {
          ...r,
          endedAt: now,
          outcome: 'lost' as const,
          detail: 'its worker stopped without finishing (killed, or lost its lock); requeued',
        },
  );
  return [...closed, { attempt: runs.length + 1, worker, startedAt: now }];
}

/** Closes the open (last) run with its outcome. */
export function endRun(runs: JobRun[], outcome: JobRunOutcome, detail?: string): JobRun[] {
  const last = runs.at(-1);
  if (!last || last.outcome) return runs;
  return [
    ...runs.slice(0, -1),
    { ...last, endedAt: new Date().toISOString(), outcome, ...(detail ? { detail } : {}) },
  ];
}
