import type { FineTuneProgress } from '../../prg/training/job-api';
import type { StoredProgress } from './fine-tune.types';

/**
 * Folds one progress report into what a job stores: the latest report, plus one history entry per
 * finished epoch (a report with step === stepsPerEpoch, or one carrying epoch metrics). A resumed
 * job re-reporting an epoch replaces that epoch's entry.
 */
export function recordProgress(stored: StoredProgress, p: FineTuneProgress): StoredProgress {
  const history = [...stored.history];
  const epochEnd = p.stepsPerEpoch > 0 ? p.step >= p.stepsPerEpoch : true;
  if (epochEnd || p.metrics) {
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
  return { ...stored, latest: p, history };
}
