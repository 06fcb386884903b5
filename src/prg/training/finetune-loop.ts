/**
 * The optimisation of a fine-tune run (paper eq. 3, App. B.1 Tab. 2) on the shared TrainingLoop
 * (loop.ts): per step a batch x_0 with labels → smoothed targets (App. C.1) and, when λ > 0, a
 * flow-matching batch on the same images (eq. 2, the base model's interpolant) → loss and
 * gradients by FineTuneStep (direct or adjoint through the solver) → AdamW (ε 1e-8, β (0.9,
 * 0.999)) at the cosine learning rate with linear warm-up from lr/1000 and floor lr/100. Per
 * epoch: train loss and accuracy, the held-out evaluation and a checkpoint.
 */
import { Json } from '../../engine/runtime/checkpoint';
import { Device } from '../../engine/runtime/device';
import { AdamW, clipGradNorm } from '../../engine/runtime/optim';
import { ParamStore } from '../../engine/runtime/params';
import { cosineWithWarmup } from '../../engine/runtime/schedule';
import { AugmentOptions, BatchLoader, ImageDataset } from '../data';
import { flowMatchingBatch, makeInterpolant } from '../interpolants';
import { ModelManifest } from '../manifest';
import { Rng } from '../rng';
import { EpochProgress, StepProgress, smoothTargets } from './common';
import { EvalResult } from './evaluate';
import { FineTuneStep } from './finetune';
import { FineTuneNets } from './finetune-nets';
import { ResolvedHyperparameters } from './hyperparameters';
import { TrainingLoop, openCheckpoint } from './loop';

/** The run's settings the loop takes as runFineTune got them. */
export interface FineTuneLoopSettings {
  /** The training dataset spec and limit (recorded; a resume must match them). */
  dataset: string;
  limit?: number;
  /** Ablation (paper §4.5): the velocity net started from random weights (recorded). */
  noPretrain?: boolean;
  /** Checkpoint directory: a run restarted with the same directory may resume from it. */
  checkpointDir: string;
  /** 'auto': resume when a checkpoint exists (job semantics); true: must exist; false: must not. */
  resume?: boolean | 'auto';
  /** Checkpoint every n optimizer steps (besides epoch ends and checkpointMinutes). */
  checkpointEvery?: number;
  /** Also checkpoint when this many minutes passed since the last one (default 10). */
  checkpointMinutes?: number;
  /** Stop after this many optimizer steps (smoke runs). */
  maxSteps?: number;
  gradClip?: number;
  /** The paper's "simple data augmentation" (§4.1): random crop with padding, horizontal flip. */
  augment?: AugmentOptions;
  /**
   * Images → the flow's input for models with a VAE stage (the frozen encoder, ./frozen-encoder.ts);
   * the step graphs then take latents.
   */
  encode?: (x: Float32Array, n: number, indices: Int32Array) => Promise<Float32Array>;
  onStep?: (p: StepProgress) => void | Promise<void>;
  onEpoch?: (p: EpochProgress) => void | Promise<void>;
  signal?: AbortSignal;
  device?: Device;
  threads?: number;
}

export interface FineTuneLoopOptions extends FineTuneLoopSettings {
  base: ModelManifest;
  hp: ResolvedHyperparameters;
  nets: FineTuneNets;
  /** Head input pooling (recorded in the run's configuration). */
  pool: number | null;
  train: ImageDataset;
  /** Training labels as indices into `nets.classes`. */
  labels: Int32Array;
  /** The current weights on the held-out split (undefined without one). */
  evaluate: () => Promise<EvalResult | undefined>;
}

export interface FineTuneLoopResult {
  /** Last epoch's trainLoss, trainAccuracy (evalAccuracy, evalNll) and the finalLoss. */
  metrics: Record<string, number>;
  /** Optimizer steps of the whole run (including those before a resume). */
  steps: number;
  resumedFromEpoch?: number;
}

export async function trainFineTune(o: FineTuneLoopOptions): Promise<FineTuneLoopResult> {
  const { base: bm, hp, nets } = o;
  const { batchSize, seed, labelSmoothing: ls, lambda } = hp;
  const K = nets.classes.length;
  const params = nets.params;
  const loader = new BatchLoader(o.train, {
    batchSize,
    shuffle: true,
    dropLast: true,
    seed,
    augment: o.augment,
  });
  const stepsPerEpoch = loader.batchesPerEpoch;
  if (stepsPerEpoch < 1)
    throw new Error(
      `dataset ${o.dataset} has ${o.train.n} images, fewer than one batch of ${batchSize}`,
    );
  const lr = hp.learningRate;
  const totalSteps = Math.min(hp.epochs * stepsPerEpoch, o.maxSteps ?? Infinity);
  const schedule = cosineWithWarmup({
    baseLr: lr,
    totalSteps: Math.max(totalSteps, 1),
    warmupSteps: Math.min(Math.round(hp.warmupEpochs * stepsPerEpoch), Math.max(totalSteps - 1, 0)),
    warmupLr: lr / 1000,
    minLr: lr / 100,
  });

  const { file, prev } = await openCheckpoint(o.checkpointDir, 'finetune', {
    resume: o.resume !== false,
    requireExisting: o.resume === true,
  });
  const runConfig: Record<string, Json> = {
    base: bm.name + '@' + bm.version,
    dataset: o.dataset,
    limit: o.limit ?? null,
    batchSize,
    seed,
    solver: hp.solver,
    steps: hp.steps,
    tStar: hp.tStar,
    pool: o.pool,
    classes: nets.classes,
    freezeFlow: hp.freezeFlow,
    noPretrain: o.noPretrain ?? false,
    epochs: hp.epochs,
    lr,
  };

  const step = await FineTuneStep.create(
    nets.prepared.velocity,
    nets.prepared.head,
    {
      batch: batchSize,
      classes: K,
      solver: hp.solver,
      steps: hp.steps,
      tStar: hp.tStar,
      pool: o.pool,
      lambdaFlow: lambda,
      freezeFlow: hp.freezeFlow,
      mode: hp.gradientMode,
    },
    { device: o.device, threads: o.threads },
    // A frozen flow's x_{t*} is computed once per image, not once per epoch (finetune.ts).
    { cacheFrozenStates: hp.freezeFlow && !o.augment },
  );
  // The optimizer sees only the trainable tensors (views on the same arrays as `params`).
  const trainable = new ParamStore();
  for (const n of step.trainable) {
    const p = params.get(n);
    trainable.set(n, p.dims, p.data);
  }
  const opt = new AdamW({ weightDecay: hp.weightDecay, eps: 1e-8, betas: [0.9, 0.999] });
  const loop = new TrainingLoop({
    phase: 'finetune',
    checkpointDir: o.checkpointDir,
    file,
    prev,
    config: runConfig,
    // The schedule (epochs, lr) is part of the run here: the cosine spans the whole run.
    fixed: Object.keys(runConfig),
    params,
    optimizer: opt,
    loader,
    epochs: hp.epochs,
    totalSteps,
    stats: { epoch: -1, sum: 0, count: 0, correct: 0, seen: 0 },
    checkpointEvery: o.checkpointEvery,
    checkpointMinutes: o.checkpointMinutes,
    signal: o.signal,
    onStep: o.onStep,
  });
  const resumedFromEpoch = prev ? Math.floor(loop.globalStep / stepsPerEpoch) : undefined;
  const epochStats = loop.stats;
  const interp = makeInterpolant(bm.interpolant);
  const imageDims = [bm.input.channels, bm.input.height, bm.input.width];
  const metrics: Record<string, number> = {};
  const addEval = async (into: Record<string, number>) => {
    const ev = await o.evaluate();
    if (ev) {
      into.evalAccuracy = ev.accuracy;
      into.evalNll = ev.nll;
    }
  };
  try {
    await loop.run(
      async (batch, globalStep) => {
        const labels = Int32Array.from(batch.labels, (l) => o.labels[l]);
        const x = o.encode ? await o.encode(batch.x, batch.n, batch.indices) : batch.x;
        const fm =
          lambda > 0
            ? flowMatchingBatch(interp, x, batch.n, new Rng(`${seed}:ft-fm:${globalStep}`))
            : undefined;
        const r = await step.run(
          params,
          { x, target: smoothTargets(labels, K, ls), fm, indices: batch.indices },
          imageDims,
        );
        if (!Number.isFinite(r.loss))
          throw new Error(`finetune: loss is ${r.loss} at step ${globalStep}; lower the lr`);
        if (o.gradClip) clipGradNorm(r.grads, o.gradClip);
        const stepLr = schedule(globalStep);
        opt.step(trainable, r.grads, stepLr);
        for (let i = 0; i < batch.n; i++) {
          let best = 0;
          for (let j = 1; j < K; j++) if (r.logits[i * K + j] > r.logits[i * K + best]) best = j;
          if (best === labels[i]) epochStats.correct++;
        }
        epochStats.seen += batch.n;
        return { loss: r.loss, lr: stepLr, metrics: { ce: r.ce, fm: r.fm } };
      },
      async (epoch, started) => {
        const epochMetrics: Record<string, number> = {
          trainLoss: epochStats.count ? epochStats.sum / epochStats.count : NaN,
          trainAccuracy: epochStats.seen ? epochStats.correct / epochStats.seen : NaN,
        };
        await addEval(epochMetrics);
        Object.assign(metrics, epochMetrics);
        await o.onEpoch?.({
          phase: 'finetune',
          epoch,
          epochs: hp.epochs,
          meanLoss: epochMetrics.trainLoss,
          seconds: (Date.now() - started) / 1000,
          metrics: epochMetrics,
        });
      },
    );
  } finally {
    await step.release();
  }
  // A run resumed from a finished checkpoint takes no step: measure the held-out split anyway.
  if (metrics.evalAccuracy === undefined) await addEval(metrics);
  metrics.finalLoss = loop.lastLoss;
  return { metrics, steps: loop.globalStep, resumedFromEpoch };
}
