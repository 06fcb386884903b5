/**
 * The fine-tuning run (paper §3.2, eq. 3; App. B.1 Tab. 2) behind `prg finetune` and the server's
 * fine-tune jobs: `fineTuneModel` implements job-api.ts; `runFineTune` takes the CLI's extra
 * switches (ablations: noPretrain, pool; smoke runs: limit, maxSteps).
 *
 * Per step: a batch x_0 with labels → smoothed targets (App. C.1) and, when λ > 0, a
 * flow-matching batch on the same images (eq. 2, the base model's interpolant) → loss and
 * gradients by FineTuneStep (direct or adjoint through the solver) → AdamW at the cosine/warm-up
 * learning rate (Tab. 2: ε 1e-8, β (0.9, 0.999), weight decay 0.05, warm-up from lr/1000, floor
 * lr/100). Per epoch: evaluation on the held-out split (if given) and a checkpoint. The final model
 * is a new model directory written atomically.
 */
import { Json } from '../../engine/runtime/checkpoint';
import { Device } from '../../engine/runtime/device';
import { AdamW, clipGradNorm } from '../../engine/runtime/optim';
import { ParamStore } from '../../engine/runtime/params';
import { cosineWithWarmup } from '../../engine/runtime/schedule';
import { Graph } from '../../engine/onnx/types';
import { AugmentOptions, BatchLoader, ImageDataset } from '../data';
import { HEAD_PREFIX, isFixedSolver, paramNamesOf, withParamNames } from '../features';
import { buildHead } from '../heads';
import { PrgModel } from '../inference';
import { flowMatchingBatch, makeInterpolant } from '../interpolants';
import { ModelManifest } from '../manifest';
import { featureDim } from '../model-dir/graph-check';
import { LoadedModelDir, readModelDir, writeModelDir } from '../model-dir/io';
import { commandLine, gitCommit } from '../model-dir/provenance';
import { buildVelocityNet, VelocityNetKind } from '../nets';
import { Rng } from '../rng';
import {
  EpochProgress,
  StepProgress,
  assertNonNegative,
  assertPositiveInt,
  smoothTargets,
} from './common';
import { evaluateModel, labelMap, loadDatasetFor } from './evaluate';
import { FineTuneStep, GradientMode, paramStoreOf, prepareNets } from './finetune';
import { FineTuneHyperparameters, FineTuneJobOptions, FineTuneJobResult } from './job-api';
import { TrainingLoop, openCheckpoint } from './loop';

export const FINETUNE_DEFAULTS = {
  epochs: 10,
  batchSize: 128,
  /** The paper's effective CIFAR-10 rate: LR base 1.25e-4 × (256 × 4 GPUs) / 512 (Tab. 2, eq. 1). */
  learningRate: 2.5e-4,
  weightDecay: 0.05,
  warmupEpochs: 1,
  labelSmoothing: 0.1,
  lambdaFlow: 1,
  // adjoint: direct mode at batch 128, K = 10 on PRG-UNet-XS passed 17 GB resident (bench/train.ts).
  gradientMode: 'adjoint' as GradientMode,
  seed: 0,
};

export interface RunFineTuneOptions {
  baseModelDir: string;
  dataset: string;
  /** Already-loaded training data (tests); `dataset` is then only recorded. */
  data?: ImageDataset;
  evalDataset?: string;
  evalData?: ImageDataset;
  hyperparameters: FineTuneHyperparameters;
  outputDir: string;
  overwrite?: boolean;
  name: string;
  version: string;
  checkpointDir: string;
  /** 'auto': resume when a checkpoint exists (job semantics); true: must exist; false: must not. */
  resume?: boolean | 'auto';
  /** Ablation (paper §4.5): start from a randomly initialised velocity net of the same shape. */
  noPretrain?: boolean;
  /** Head input: null = flattened x_t, n = pooled to n×n; default: the base model's. */
  featurePool?: number | null;
  /** Head width when a new head is built; default: the base model's. */
  hidden?: number;
  gradClip?: number;
  /** The paper's "simple data augmentation" (§4.1): random crop with padding, horizontal flip. */
  augment?: AugmentOptions;
  limit?: number;
  evalLimit?: number;
  maxSteps?: number;
  checkpointEvery?: number;
  /** Also checkpoint when this many minutes passed since the last one (default 10). */
  checkpointMinutes?: number;
  onStep?: (p: StepProgress) => void | Promise<void>;
  onEpoch?: (p: EpochProgress) => void | Promise<void>;
  signal?: AbortSignal;
  device?: Device;
  threads?: number;
  /** The command recorded in provenance and metrics (default: this process's command line). */
  command?: string;
}

export interface RunFineTuneResult extends FineTuneJobResult {
  steps: number;
  seconds: number;
}

/** Parameters of `g` (names as in `store`, minus `prefix`) written into a copy of `g`. */
function exportNet(g: Graph, store: ParamStore, names: string[], prefix: string): Graph {
  const sub = new ParamStore();
  for (const n of names) {
    const p = store.get(prefix + n);
    sub.set(n, p.dims, p.data);
  }
  return withParamNames(sub.writeTo(g), names);
}

function sameClasses(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c) => b.includes(c));
}

export async function runFineTune(o: RunFineTuneOptions): Promise<RunFineTuneResult> {
  const started = Date.now();
  const d = FINETUNE_DEFAULTS;
  const hp = o.hyperparameters;
  const base = await readModelDir(o.baseModelDir);
  const bm = base.manifest;
  const epochs = assertPositiveInt(hp.epochs ?? d.epochs, 'epochs');
  const batchSize = assertPositiveInt(hp.batchSize ?? d.batchSize, 'batchSize');
  const lr = assertNonNegative(hp.learningRate ?? d.learningRate, 'learningRate');
  const weightDecay = assertNonNegative(hp.weightDecay ?? d.weightDecay, 'weightDecay');
  const warmupEpochs = assertNonNegative(hp.warmupEpochs ?? d.warmupEpochs, 'warmupEpochs');
  const ls = hp.labelSmoothing ?? d.labelSmoothing;
  if (!(ls >= 0 && ls < 1)) throw new Error(`labelSmoothing must be in [0, 1), got ${ls}`);
  const lambdaFlow = assertNonNegative(hp.lambdaFlow ?? d.lambdaFlow, 'lambdaFlow');
  const solver = hp.solver ?? (isFixedSolver(bm.solver.name) ? bm.solver.name : 'euler');
  if (!isFixedSolver(solver))
    throw new Error(`solver ${String(solver)}: fine-tuning uses euler, midpoint or rk4`);
  const steps = assertPositiveInt(hp.steps ?? bm.solver.steps, 'steps');
  const tStar = hp.tStar ?? bm.solver.tStar;
  if (!(tStar > 0 && tStar <= 1)) throw new Error(`tStar must be in (0, 1], got ${tStar}`);
  const mode = hp.gradientMode ?? d.gradientMode;
  if (mode !== 'direct' && mode !== 'adjoint')
    throw new Error(`gradientMode ${String(mode)}: use direct or adjoint`);
  const freezeFlow = hp.freezeFlow ?? false;
  const lambda = freezeFlow ? 0 : lambdaFlow;
  const seed = hp.seed ?? d.seed;
  const pool = o.featurePool === undefined ? bm.featurePool : o.featurePool;
  const command = o.command ?? commandLine();

  // Data: the model's input shape; labels mapped to the (possibly new) class list.
  const ds =
    o.data ??
    (await loadDatasetFor(o.dataset, bm, { limit: o.limit, allowResize: hp.allowResize }));
  const evalDs =
    o.evalData ??
    (o.evalDataset
      ? await loadDatasetFor(o.evalDataset, bm, { limit: o.evalLimit, allowResize: hp.allowResize })
      : undefined);
  const keepHead = sameClasses(ds.classes, bm.classes) && pool === bm.featurePool && !o.hidden;
  const classes = keepHead ? [...bm.classes] : [...ds.classes];
  const K = classes.length;
  const map = labelMap(ds, classes);

  // Nets: the base flow (or a random one of the same shape), the base head or a new one.
  let velocity = base.velocity;
  if (o.noPretrain) {
    const arch = bm.architecture.velocity;
    const net = buildVelocityNet({
      kind: arch.kind as VelocityNetKind,
      preset: arch.preset ?? 'XS',
      inputShape: [bm.input.channels, bm.input.height, bm.input.width],
      seed: seed + 17,
      overrides: arch.config as Record<string, never>,
    });
    velocity = withParamNames(net.graph, net.paramNames);
  }
  const input = bm.input;
  const hidden = o.hidden ?? bm.architecture.head.hidden;
  let head = base.head;
  if (!keepHead) {
    const built = buildHead({
      kind: bm.architecture.head.kind,
      inputDim: featureDim({ input, featurePool: pool }),
      hidden,
      classes: K,
      seed: seed + 1,
    });
    head = withParamNames(built.graph, built.paramNames);
  }
  const velocityNames = paramNamesOf(velocity);
  const headNames = paramNamesOf(head);

  const nets = prepareNets(velocity, head, batchSize);
  const params = paramStoreOf(nets.velocity, nets.head);
  const loader = new BatchLoader(ds, {
    batchSize,
    shuffle: true,
    dropLast: true,
    seed,
    augment: o.augment,
  });
  const stepsPerEpoch = loader.batchesPerEpoch;
  if (stepsPerEpoch < 1)
    throw new Error(
      `dataset ${o.dataset} has ${ds.n} images, fewer than one batch of ${batchSize}`,
    );
  const totalSteps = Math.min(epochs * stepsPerEpoch, o.maxSteps ?? Infinity);
  const schedule = cosineWithWarmup({
    baseLr: lr,
    totalSteps: Math.max(totalSteps, 1),
    warmupSteps: Math.min(Math.round(warmupEpochs * stepsPerEpoch), Math.max(totalSteps - 1, 0)),
    warmupLr: lr / 1000,
    minLr: lr / 100,
  });

  const { file: ckptFile, prev } = await openCheckpoint(o.checkpointDir, 'finetune', {
    resume: o.resume !== false,
    requireExisting: o.resume === true,
  });
  const runConfig: Record<string, Json> = {
    base: bm.name + '@' + bm.version,
    dataset: o.dataset,
    limit: o.limit ?? null,
    batchSize,
    seed,
    solver,
    steps,
    tStar,
    pool,
    classes,
    freezeFlow,
    noPretrain: o.noPretrain ?? false,
    epochs,
    lr,
  };

  const step = await FineTuneStep.create(
    nets.velocity,
    nets.head,
    {
      batch: batchSize,
      classes: K,
      solver,
      steps,
      tStar,
      pool,
      lambdaFlow: lambda,
      freezeFlow,
      mode,
    },
    { device: o.device, threads: o.threads },
  );
  // The optimizer sees only the trainable tensors (views on the same arrays as `params`).
  const trainable = new ParamStore();
  for (const n of step.trainable) {
    const p = params.get(n);
    trainable.set(n, p.dims, p.data);
  }
  const opt = new AdamW({ weightDecay, eps: 1e-8, betas: [0.9, 0.999] });
  const loop = new TrainingLoop({
    phase: 'finetune',
    checkpointDir: o.checkpointDir,
    file: ckptFile,
    prev,
    config: runConfig,
    // The schedule (epochs, lr) is part of the run here: the cosine spans the whole run.
    fixed: Object.keys(runConfig),
    params,
    optimizer: opt,
    loader,
    epochs,
    totalSteps,
    stats: { epoch: -1, sum: 0, count: 0, correct: 0, seen: 0 },
    checkpointEvery: o.checkpointEvery,
    checkpointMinutes: o.checkpointMinutes,
    signal: o.signal,
    onStep: o.onStep,
  });
  const resumedFromEpoch = prev ? Math.floor(loop.globalStep / stepsPerEpoch) : undefined;
  const epochStats = loop.stats;

  /** The current weights as a loaded model (for evaluation and export). */
  const snapshot = (): LoadedModelDir => {
    const manifest: ModelManifest = {
      ...bm,
      name: o.name,
      version: o.version,
      description: `fine-tuned from ${bm.name}@${bm.version} on ${o.dataset}`,
      createdAt: new Date().toISOString(),
      architecture: {
        velocity: { ...bm.architecture.velocity },
        head: {
          ...bm.architecture.head,
          hidden,
          params: headNames.reduce((s, n) => s + params.get(HEAD_PREFIX + n).data.length, 0),
        },
      },
      solver: { name: solver, steps, tStar },
      featurePool: pool,
      classes,
      files: { velocity: 'velocity.onnx', head: 'head.onnx' },
      metrics: {},
      ood: undefined,
      provenance: {
        dataset: o.dataset,
        command,
        gitCommit: gitCommit(),
        parent: `${bm.name}@${bm.version}`,
        phase: 'finetune',
        gradientMode: mode,
        lambdaFlow: lambda,
        labelSmoothing: ls,
        freezeFlow,
        noPretrain: o.noPretrain ?? false,
        epochs,
        batchSize,
        learningRate: lr,
        weightDecay,
        ...(o.augment ? { augment: o.augment } : {}),
      },
    };
    delete manifest.ood;
    return {
      dir: o.outputDir,
      manifest,
      velocity: exportNet(velocity, params, velocityNames, ''),
      head: exportNet(head, params, headNames, HEAD_PREFIX),
    };
  };
  const evaluate = async (snap: LoadedModelDir) => {
    if (!evalDs) return undefined;
    const model = new PrgModel(snap, { device: o.device, threads: o.threads }, []);
    try {
      return await evaluateModel(model, evalDs, { batchSize: 64 });
    } finally {
      await model.release();
    }
  };

  const interp = makeInterpolant(bm.interpolant);
  const imageDims = [bm.input.channels, bm.input.height, bm.input.width];
  const metrics: Record<string, number> = {};
  try {
    await loop.run(
      async (batch, globalStep) => {
        const labels = Int32Array.from(batch.labels, (l) => map[l]);
        const fm =
          lambda > 0
            ? flowMatchingBatch(interp, batch.x, batch.n, new Rng(`${seed}:ft-fm:${globalStep}`))
            : undefined;
        const r = await step.run(
          params,
          { x: batch.x, target: smoothTargets(labels, K, ls), fm },
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
        const ev = await evaluate(snapshot());
        if (ev) {
          epochMetrics.evalAccuracy = ev.accuracy;
          epochMetrics.evalNll = ev.nll;
        }
        Object.assign(metrics, epochMetrics);
        await o.onEpoch?.({
          phase: 'finetune',
          epoch,
          epochs,
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
  if (evalDs && metrics.evalAccuracy === undefined) {
    const ev = await evaluate(snapshot());
    if (ev) {
      metrics.evalAccuracy = ev.accuracy;
      metrics.evalNll = ev.nll;
    }
  }
  const snap = snapshot();
  if (evalDs && metrics.evalAccuracy !== undefined && o.evalDataset)
    snap.manifest.metrics.accuracy = {
      value: metrics.evalAccuracy,
      command: `prg eval --model ${o.outputDir} --data ${o.evalDataset}${
        o.evalLimit ? ` --limit ${o.evalLimit}` : ''
      } --json`,
      data: o.evalDataset,
      n: evalDs.n,
      measuredAt: new Date().toISOString(),
    };
  metrics.finalLoss = loop.lastLoss;
  const modelDir = await writeModelDir(
    o.outputDir,
    { manifest: snap.manifest, velocity: snap.velocity, head: snap.head },
    { overwrite: o.overwrite },
  );
  return {
    modelDir,
    metrics,
    resumedFromEpoch,
    steps: loop.globalStep,
    seconds: (Date.now() - started) / 1000,
  };
}

/** job-api.ts: resume from checkpointDir when it has a checkpoint; replace outputDir. */
export async function fineTuneModel(opts: FineTuneJobOptions): Promise<FineTuneJobResult> {
  const epochsTotal = opts.hyperparameters.epochs ?? FINETUNE_DEFAULTS.epochs;
  const r = await runFineTune({
    ...opts,
    resume: 'auto',
    overwrite: true,
    command: `fine-tune job (base ${opts.baseModelDir}, data ${opts.dataset})`,
    onStep: async (p) =>
      opts.onProgress?.({
        epoch: p.epoch,
        epochs: p.epochs,
        step: p.step,
        stepsPerEpoch: p.stepsPerEpoch,
        progress: p.globalStep / p.totalSteps,
        loss: p.loss,
        metrics: p.metrics,
      }),
    onEpoch: async (p) =>
      opts.onProgress?.({
        epoch: p.epoch,
        epochs: epochsTotal,
        step: 0,
        stepsPerEpoch: 0,
        progress: Math.min(1, (p.epoch + 1) / epochsTotal),
        loss: p.meanLoss,
        metrics: p.metrics,
      }),
  });
  return { modelDir: r.modelDir, metrics: r.metrics, resumedFromEpoch: r.resumedFromEpoch };
}
