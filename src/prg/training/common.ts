/**
 * Pieces shared by pre-training and fine-tuning: loss fragments, progress records, resumable
 * checkpoints (one ONNX file per run, replaced atomically) and cancellation.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { Json, LoadedCheckpoint, loadCheckpoint } from '../../engine/runtime/checkpoint';

/** Mean squared error over every element, as a scalar (paper eq. 2: ‖v_θ(x_t, t) − u_t‖²). */
export function mseLoss(b: GraphBuilder, v: Value, u: Value): Value {
  const d = b.sub(v, u);
  return b.reduceMean(b.mul(d, d), [...Array(v.rank).keys()], false);
}

/**
 * Label-smoothing cross-entropy (paper App. C.1), mean over the batch:
 * −Σ_j q_j log softmax(z)_j with q = (1 − ε)·onehot(y) + ε/K. `target` is the smoothed q,
 * built on the host and fed as an input (so no OneHot op is needed in the gradient graph).
 */
export function smoothedCrossEntropy(b: GraphBuilder, logits: Value, target: Value): Value {
  const logp = b.logSoftmax(logits, -1);
  const perSample = b.reduceSum(b.mul(logp, target), [1], false);
  return b.neg(b.reduceMean(perSample, [0], false));
}

/** Smoothed one-hot targets [n, K] for labels (paper App. C.1). */
export function smoothTargets(labels: Int32Array, classes: number, eps: number): Float32Array {
  const q = new Float32Array(labels.length * classes).fill(eps / classes);
  for (let i = 0; i < labels.length; i++) q[i * classes + labels[i]] += 1 - eps;
  return q;
}

export interface StepProgress {
  phase: 'pretrain' | 'finetune';
  epoch: number;
  epochs: number;
  /** 0-based step within the epoch (of the step just taken). */
  step: number;
  stepsPerEpoch: number;
  /** Optimizer steps taken so far in the run. */
  globalStep: number;
  totalSteps: number;
  loss: number;
  lr: number;
  /** Images per second over the last step. */
  imgPerSec: number;
  metrics?: Record<string, number>;
}

export interface EpochProgress {
  phase: 'pretrain' | 'finetune';
  epoch: number;
  epochs: number;
  meanLoss: number;
  seconds: number;
  metrics: Record<string, number>;
}

export interface TrainCallbacks {
  onStep?: (p: StepProgress) => void | Promise<void>;
  onEpoch?: (p: EpochProgress) => void | Promise<void>;
  /** Checked before every step; when aborted, a checkpoint is written and the run returns. */
  signal?: AbortSignal;
}

/** Thrown when a run stops on its AbortSignal (after its checkpoint is written). */
export class TrainingAborted extends Error {
  constructor(
    readonly checkpoint: string,
    readonly globalStep: number,
  ) {
    super(`training stopped at step ${globalStep}; resume from ${checkpoint}`);
    this.name = 'TrainingAborted';
  }
}

export function checkpointPath(dir: string, phase: 'pretrain' | 'finetune'): string {
  return join(dir, `${phase}.ckpt.onnx`);
}

/** The checkpoint of a previous run in `dir`, or null when there is none. */
export async function findCheckpoint(
  dir: string,
  phase: 'pretrain' | 'finetune',
): Promise<LoadedCheckpoint | null> {
  const p = checkpointPath(dir, phase);
  const exists = await fs
    .stat(p)
    .then(() => true)
    .catch(() => false);
  return exists ? loadCheckpoint(p) : null;
}

/**
 * Resuming is only sound with the same run configuration: compare the stored one (JSON) with the
 * current one on the keys that shape the run, and name the first difference.
 */
export function checkResumeConfig(
  stored: Json | undefined,
  current: Record<string, Json>,
  keys: string[],
  where: string,
): void {
  if (!stored || typeof stored !== 'object' || Array.isArray(stored))
    throw new Error(`${where}: checkpoint has no run configuration; cannot resume`);
  for (const k of keys) {
    const a = JSON.stringify(stored[k] ?? null);
    const b = JSON.stringify(current[k] ?? null);
    if (a !== b)
      throw new Error(
        `${where}: cannot resume, ${k} differs (checkpoint ${a}, now ${b}); ` +
          'use the same settings or a fresh checkpoint directory',
      );
  }
}

export function assertPositiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${what} must be an integer >= 1, got ${v}`);
  return v;
}

export function assertNonNegative(v: number, what: string): number {
  if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0))
    throw new Error(`${what} must be a number >= 0, got ${v}`);
  return v;
}
