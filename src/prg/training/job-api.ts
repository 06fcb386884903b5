/**
 * What a fine-tuning job (server worker or CLI) needs from the PRG pipeline.
 * Implemented in src/prg/training/finetune-job.ts; the server's job processor only calls this.
 */
import { SolverName } from '../manifest';

export interface FineTuneHyperparameters {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  weightDecay?: number;
  warmupEpochs?: number;
  /** Label smoothing for the cross-entropy (paper appendix C.1). */
  labelSmoothing?: number;
  /** Weight of the flow-matching loss in the fine-tuning objective (paper eq. 3); 0 allowed. */
  lambdaFlow?: number;
  steps?: number;
  tStar?: number;
  solver?: Exclude<SolverName, 'dopri5'>;
  gradientMode?: 'direct' | 'adjoint';
  freezeFlow?: boolean;
  seed?: number;
  /** Resize dataset images to the model's input shape when they differ. */
  allowResize?: boolean;
}

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
}

export interface FineTuneJobResult {
  modelDir: string;
  metrics: Record<string, number>;
  resumedFromEpoch?: number;
}
