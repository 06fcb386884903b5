/**
 * The loop pre-training (pretrain.ts) and fine-tuning (finetune-loop.ts) share: epochs of batches
 * from a seeded loader, resumed mid-epoch at the checkpoint's step, stopped at totalSteps (epochs ×
 * batches per epoch, or maxSteps) or on an AbortSignal, a progress record after every step, and a
 * checkpoint every n steps, every m minutes and at each epoch end. What a step computes, which
 * settings a resume must keep and what an epoch end reports stay with each run.
 */
import { promises as fs } from 'node:fs';
import { Json, LoadedCheckpoint, saveCheckpoint } from '../../engine/runtime/checkpoint';
import { Ema } from '../../engine/runtime/ema';
import { Optimizer } from '../../engine/runtime/optim';
import { ParamStore } from '../../engine/runtime/params';
import { Batch, BatchLoader } from '../data';
import {
  StepProgress,
  TrainCallbacks,
  TrainingAborted,
  assertNonNegative,
  checkResumeConfig,
  checkpointPath,
  findCheckpoint,
} from './common';

type Phase = StepProgress['phase'];

/** Running sums of the current epoch (a run may add its own, e.g. correct/seen), JSON numbers. */
export interface EpochStats {
  epoch: number;
  sum: number;
  count: number;
  [k: string]: number;
}

/**
 * The run's checkpoint file and the previous run's checkpoint there (null: none). `resume`: an
 * existing checkpoint may be continued (otherwise it is an error: a new run would overwrite it);
 * `requireExisting`: it must exist.
 */
export async function openCheckpoint(
  dir: string,
  phase: Phase,
  o: { resume: boolean; requireExisting?: boolean },
): Promise<{ file: string; prev: LoadedCheckpoint | null }> {
  const file = checkpointPath(dir, phase);
  const prev = await findCheckpoint(dir, phase);
  if (prev && !o.resume)
    throw new Error(
      `${file} exists: pass resume (--resume) to continue it, or use another checkpoint directory`,
    );
  if (!prev && o.requireExisting) throw new Error(`--resume: no checkpoint at ${file}`);
  return { file, prev };
}

export interface TrainingLoopOptions<S extends EpochStats> {
  phase: Phase;
  checkpointDir: string;
  /** From openCheckpoint. */
  file: string;
  prev: LoadedCheckpoint | null;
  /** The run's settings, stored in the checkpoint; a resume must match them on `fixed`. */
  config: Record<string, Json>;
  fixed: string[];
  params: ParamStore;
  optimizer: Optimizer;
  ema?: Ema;
  loader: BatchLoader;
  epochs: number;
  totalSteps: number;
  /** A fresh epoch's sums (epoch -1); reset at each new epoch, restored on resume. */
  stats: S;
  /** Checkpoint every n optimizer steps (undefined or 0: by time and at epoch ends only). */
  checkpointEvery?: number;
  /** Also checkpoint when this many minutes passed since the last one (default 10). */
  checkpointMinutes?: number;
  signal?: AbortSignal;
  onStep?: TrainCallbacks['onStep'];
}

export interface StepResult {
  loss: number;
  /** The learning rate the step used (reported). */
  lr: number;
  metrics?: Record<string, number>;
}

export class TrainingLoop<S extends EpochStats> {
  /** The current epoch's sums: the caller's step adds its own fields; the loop adds sum/count. */
  readonly stats: S;
  readonly stepsPerEpoch: number;
  private taken: number;
  private loss = NaN;
  private readonly fresh: S;
  private readonly minutes: number;
  private lastSave: number;

  /** Restores weights, optimizer (and EMA) state, step and epoch sums from `o.prev`. */
  constructor(private readonly o: TrainingLoopOptions<S>) {
    this.stepsPerEpoch = o.loader.batchesPerEpoch;
    this.fresh = { ...o.stats };
    this.stats = o.stats;
    this.taken = 0;
    const prev = o.prev;
    if (prev) {
      checkResumeConfig(prev.extra.config, o.config, o.fixed, o.file);
      o.params.copyFrom(prev.params);
      if (prev.optimizer) o.optimizer.loadState(prev.optimizer);
      if (prev.ema && o.ema) o.ema.load(prev.ema.shadow, prev.ema.updates);
      this.taken = prev.step;
      const stored = prev.extra.epochStats as S | undefined;
      if (stored && typeof stored === 'object') Object.assign(this.stats, stored);
    }
    this.minutes = assertNonNegative(o.checkpointMinutes ?? 10, 'checkpointMinutes');
    this.lastSave = Date.now();
  }

  /** Optimizer steps taken in the run so far (the checkpoint's, after a resume). */
  get globalStep(): number {
    return this.taken;
  }

  /** The loss of the last step taken here (NaN before the first). */
  get lastLoss(): number {
    return this.loss;
  }

  private async save(): Promise<void> {
    const o = this.o;
    this.lastSave = Date.now();
    await saveCheckpoint(o.file, {
      params: o.params,
      step: this.taken,
      epoch: Math.floor(this.taken / this.stepsPerEpoch),
      optimizer: o.optimizer.state(),
      ema: o.ema ? { shadow: o.ema.shadow, updates: o.ema.updates } : undefined,
      extra: { config: o.config, phase: o.phase, epochStats: { ...this.stats } },
    });
  }

  /**
   * Runs the remaining steps. `step` takes one optimizer step on `batch` (`globalStep`: the steps
   * before it); `endEpoch` reports an epoch after its checkpoint (`started`: its Date.now()).
   */
  async run(
    step: (batch: Batch, globalStep: number) => Promise<StepResult>,
    endEpoch: (epoch: number, started: number) => Promise<void>,
  ): Promise<void> {
    const o = this.o;
    const spe = this.stepsPerEpoch;
    await fs.mkdir(o.checkpointDir, { recursive: true });
    while (this.taken < o.totalSteps) {
      const epoch = Math.floor(this.taken / spe);
      const skip = this.taken % spe;
      const t0 = Date.now();
      // Running sums of the epoch survive a resume (stored in the checkpoint).
      if (this.stats.epoch !== epoch) Object.assign(this.stats, this.fresh, { epoch });
      for (const batch of o.loader.epoch(epoch)) {
        if (batch.index < skip) continue;
        if (this.taken >= o.totalSteps) break;
        if (o.signal?.aborted) {
          await this.save();
          throw new TrainingAborted(o.file, this.taken);
        }
        const ts = Date.now();
        const r = await step(batch, this.taken);
        this.taken++;
        this.loss = r.loss;
        this.stats.sum += r.loss;
        this.stats.count++;
        await o.onStep?.({
          phase: o.phase,
          epoch,
          epochs: o.epochs,
          step: batch.index,
          stepsPerEpoch: spe,
          globalStep: this.taken,
          totalSteps: o.totalSteps,
          loss: r.loss,
          lr: r.lr,
          imgPerSec: (batch.n * 1000) / Math.max(1, Date.now() - ts),
          ...(r.metrics ? { metrics: r.metrics } : {}),
        });
        const every = o.checkpointEvery;
        if (
          (every && this.taken % every === 0) ||
          Date.now() - this.lastSave > this.minutes * 60_000
        )
          await this.save();
      }
      await this.save();
      await endEpoch(epoch, t0);
    }
  }
}
