/**
 * Learning-rate schedules as functions of the optimizer step (0-based: the lr used by step t).
 *
 * Fine-tuning follows App. B.1, Tab. 2 of the paper: cosine decay with a linear warm-up starting
 * at "Warmup LR", ending at "Min LR". The paper takes this configuration from Swin Transformer,
 * whose scheduler (timm CosineLRScheduler, per iteration, warm-up as a prefix) is:
 *   t < W:  lr = warmupLr + (baseLr − warmupLr) · t / W
 *   t ≥ W:  lr = minLr + ½(baseLr − minLr)(1 + cos(π (t − W) / (T − W)))
 *   t ≥ T:  lr = minLr
 * With `warmupPrefix: false` the cosine runs over [0, T] and warm-up only overrides t < W
 * (timm's default).
 */

/** lr for 0-based step t. */
export type LrSchedule = (step: number) => number;

export function constantLr(lr: number): LrSchedule {
  if (!(lr >= 0)) throw new Error(`constantLr: lr=${lr} must be >= 0`);
  return () => lr;
}

export interface CosineOptions {
  baseLr: number;
  /** T: total optimizer steps (epochs × steps per epoch). */
  totalSteps: number;
  /** W: warm-up steps (0 = none). */
  warmupSteps?: number;
  /** lr at step 0 of the warm-up (paper: 1.25e-7, i.e. baseLr / 1000). */
  warmupLr?: number;
  /** Floor of the cosine (paper: 1.25e-6, i.e. baseLr / 100). */
  minLr?: number;
  /** Cosine starts after the warm-up (default true, as Swin). */
  warmupPrefix?: boolean;
}

export function cosineWithWarmup(o: CosineOptions): LrSchedule {
  const W = o.warmupSteps ?? 0;
  const T = o.totalSteps;
  const warmupLr = o.warmupLr ?? 0;
  const minLr = o.minLr ?? 0;
  const prefix = o.warmupPrefix ?? true;
  if (!Number.isInteger(T) || T <= 0) throw new Error(`cosine: totalSteps=${T} must be > 0`);
  if (!Number.isInteger(W) || W < 0 || W >= T)
    throw new Error(`cosine: warmupSteps=${W} must be an integer in [0, totalSteps)`);
  if (!(o.baseLr >= 0 && warmupLr >= 0 && minLr >= 0))
    throw new Error('cosine: learning rates must be >= 0');
  const span = prefix ? T - W : T;
  return (t) => {
    if (t < 0) throw new Error(`lr schedule: step ${t} < 0`);
    if (t < W) return warmupLr + ((o.baseLr - warmupLr) * t) / W;
    if (t >= T) return minLr;
    const tc = prefix ? t - W : t;
    return minLr + 0.5 * (o.baseLr - minLr) * (1 + Math.cos((Math.PI * tc) / span));
  };
}

/**
 * Linear scaling of a base learning rate with the global batch size, lr = base · B / 512, as in
 * Swin Transformer's training script, whose fine-tuning recipe App. B.1 follows ("we calculate
 * the learning rate using Eq. 1"; the equation's body is lost in our text copy of the paper, so
 * the reference batch 512 is Swin's and is a parameter here).
 */
export function scaleLr(base: number, globalBatch: number, referenceBatch = 512): number {
  if (!(globalBatch > 0 && referenceBatch > 0)) throw new Error('scaleLr: batch sizes must be > 0');
  return (base * globalBatch) / referenceBatch;
}
