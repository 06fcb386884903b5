/**
 * What a fine-tuning job (server worker or CLI) needs from the PRG pipeline.
 * Implemented in src/prg/training/finetune-job.ts; the server's job processor only calls this.
 */
import type { AutoRule, FineTuneHyperparameters } from './hyperparameters';

/** Defined (kinds, ranges, defaults) in hyperparameters.ts. */
export type { FineTuneHyperparameters };

export interface FineTuneProgress {
  epoch: number;
  epochs: number;
  step: number;
  stepsPerEpoch: number;
  /** 0..1 over the whole job */
  progress: number;
  loss?: number;
  metrics?: Record<string, number>;
}

export interface FineTuneJobOptions {
  /** Directory of the base model (models/<name>/...). */
  baseModelDir: string;
  /** Dataset spec (see src/prg/data): 'mnist:train', a folder path, ... */
  dataset: string;
  /** Optional held-out split spec for evaluation and OOD threshold calibration. */
  evalDataset?: string;
  hyperparameters: FineTuneHyperparameters;
  /** Where the new model version is written (atomically: temp dir + rename). */
  outputDir: string;
  /** Name/version for the new manifest. */
  name: string;
  version: string;
  /** Checkpoint directory: a job restarted with the same directory resumes from its last checkpoint. */
  checkpointDir: string;
  onProgress?: (p: FineTuneProgress) => void | Promise<void>;
  /** Cancellation: checked every step. */
  signal?: AbortSignal;
  /**
   * The "auto" rule (hyperparameters.ts AUTO_RULE) for benchmarks that compare rules on a
   * validation split (bench/uploads.ts); the server never sets it.
   */
  autoRule?: AutoRule;
}

export interface FineTuneJobResult {
  modelDir: string;
  metrics: Record<string, number>;
  resumedFromEpoch?: number;
  /**
   * Optimizer steps of the whole job, every phase, including those taken before a resume (so a
   * resumed job and an uninterrupted one of the same hyperparameters report the same count).
   */
  steps?: number;
  /** Each phase's optimizer steps and wall seconds (this process's part of it, after a resume). */
  phases?: { phase: string; steps: number; seconds: number }[];
}
