/**
 * The FINE_TUNE_TRAINER: fineTuneModel from src/prg/training/finetune-job.ts (job-api.ts). Tests
 * swap in testing/fake-trainer.ts where the real one would be slow.
 */
import { fineTuneModel } from '../../prg/training/finetune-job';
import type { FineTuneTrainer } from './fine-tune.types';

export const defaultTrainer: FineTuneTrainer = fineTuneModel;

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
