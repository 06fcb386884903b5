/**
 * The default FINE_TUNE_TRAINER. fineTuneModel (src/prg/training/finetune-job.ts, interface in
 * job-api.ts) is being written; until it lands in this build a job fails with this message rather
 * than pretending to train. Tests inject testing/fake-trainer.ts.
 */
import type { FineTuneTrainer } from './fine-tune.types';

export const defaultTrainer: FineTuneTrainer = async () => {
  throw new Error(
    'fine-tuning is not available in this build: src/prg/training/finetune-job.ts (fineTuneModel) is missing',
  );
};

let override: FineTuneTrainer | null = null;

/**
 * Tests and tools: the trainer for FineTunesModules created after this call in this process
 * (the app is built by createApp, which has no per-module options). null restores the default.
 */
export function useTrainer(t: FineTuneTrainer | null): void {
  override = t;
}

export function currentTrainer(): FineTuneTrainer {
  return override ?? defaultTrainer;
}
