/**
 * Pre-training by flow matching (paper §3.1, eq. 2; App. B.1 Tab. 1):
 *   L(θ) = E_{t ~ U(0,1), x_0 ~ data, x_1 ~ N(0, I)} ‖v_θ(x_t, t) − u_t(x_t | x_0, x_1)‖²
 * with x_t and u_t from the interpolant (ICFM / OT-CFM, which first pairs the batch by the exact
 * OT plan / GVP). Adam, lr 1e-4 (Tab. 1), an EMA of the weights (exported), periodic
 * checkpoints, resume.
 *
 * The loss graph is the velocity net at a fixed batch with its parameters lifted to inputs, plus
 * an input `u` and the MSE; GradientStep appends its VJP (src/engine/autodiff) and runs it in one
 * ORT session. The result is a model directory whose head is freshly initialised (untrained): the
 * input to `prg finetune`.
 */
import { GraphBuilder } from '../../engine/onnx/builder';
import { Json } from '../../engine/runtime/checkpoint';
import { Device } from '../../engine/runtime/device';
import { Ema } from '../../engine/runtime/ema';
import { GradientStep } from '../../engine/runtime/gradient-step';
import { Adam, clipGradNorm } from '../../engine/runtime/optim';
import { ParamStore } from '../../engine/runtime/params';
import { Graph } from '../../engine/onnx/types';
import { BatchLoader, ImageDataset, loadDataset } from '../data';
import { withParamNames } from '../features';
import { flowMatchingBatch, makeInterpolant } from '../interpolants';
import { InterpolantName, SolverName } from '../manifest';
import { writeModelWithFreshHead } from '../model-dir/fresh-head';
import { provenance } from '../model-dir/provenance';
import { VelocityNetKind, buildVelocityNet } from '../nets';
import { Rng } from '../rng';
import { TrainCallbacks, assertNonNegative, assertPositiveInt, mseLoss } from './common';
import { TrainingLoop, openCheckpoint } from './loop';

export interface NetSpec {
  kind: VelocityNetKind;
  preset: string;
  overrides?: Record<string, unknown>;
}

export interface PretrainOptions extends TrainCallbacks {
  /** Dataset spec (src/prg/data), e.g. "mnist:train". */
  data: string;
  /** Already-loaded dataset (tests); `data` is then only recorded. */
  dataset?: ImageDataset;
  /** The model directory to write. */
  out: string;
  /** Replace `out` if it exists. */
  overwrite?: boolean;
  checkpointDir: string;
  /** Continue from checkpointDir's checkpoint (required when one exists). */
  resume?: boolean;
  net?: NetSpec;
  interpolant?: InterpolantName;
  epochs?: number;
  batchSize?: number;
  /** Adam learning rate (paper Tab. 1: 1e-4). */
  lr?: number;
  /** EMA decay of the exported weights (with warm-up, see Ema). */
  emaDecay?: number;
  /** Global-norm gradient clipping (0 = off). */
  gradClip?: number;
  seed?: number;
  /** Use only the first n training images. */
  limit?: number;
  /** Checkpoint every n optimizer steps (and at each epoch end). */
  checkpointEvery?: number;
  /** Also checkpoint when this many minutes passed since the last one (default 10). */
  checkpointMinutes?: number;
  /** Stop after this many optimizer steps in total (smoke runs, benchmarks). */
  maxSteps?: number;
  /** Head written with the model (untrained here; fine-tuning trains it). */
  head?: { kind: 'mlp' | 'pooled'; hidden: number; featurePool: number | null };
  /** The reverse-process setting recorded in the manifest. */
  solver?: { name: SolverName; steps: number; tStar: number };
  name?: string;
  version?: string;
  device?: Device;
  threads?: number;
}

export interface PretrainResult {
  modelDir: string;
  checkpoint: string;
  steps: number;
  epochs: number;
  finalLoss: number;
  resumedFromStep?: number;
  seconds: number;
}

export const PRETRAIN_DEFAULTS = {
  net: { kind: 'unet', preset: 'XS' } as NetSpec,
  interpolant: 'icfm' as InterpolantName,
  epochs: 10,
  batchSize: 128,
  lr: 1e-4,
  emaDecay: 0.999,
  gradClip: 1,
  seed: 0,
  checkpointEvery: 200,
  head: { kind: 'mlp' as const, hidden: 256, featurePool: null as number | null },
  solver: { name: 'euler' as SolverName, steps: 10, tStar: 1 },
};

/** Forward graph of the flow-matching loss at a fixed batch: inputs x (= x_t), t, u; output loss. */
export function buildFlowMatchingLossGraph(velocity: Graph): Graph {
  const b = GraphBuilder.from(velocity);
  const vOut = velocity.outputs.find((o) => o.name === 'v');
  if (!vOut) throw new Error(`velocity graph ${velocity.name} has no output v`);
  const v = b.value('v');
  const u = b.input('u', v.shape);
  b.outputs.length = 0;
  b.output(mseLoss(b, v, u), 'loss');
  return b.build();
}

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const d = PRETRAIN_DEFAULTS;
  const net = o.net ?? d.net;
  const interpName = o.interpolant ?? d.interpolant;
  const epochs = assertPositiveInt(o.epochs ?? d.epochs, 'epochs');
  const batchSize = assertPositiveInt(o.batchSize ?? d.batchSize, 'batchSize');
  const lr = assertNonNegative(o.lr ?? d.lr, 'lr');
  const emaDecay = o.emaDecay ?? d.emaDecay;
  const gradClip = assertNonNegative(o.gradClip ?? d.gradClip, 'gradClip');
  const seed = o.seed ?? d.seed;
  const every = assertPositiveInt(o.checkpointEvery ?? d.checkpointEvery, 'checkpointEvery');
  const headSpec = o.head ?? d.head;
  const solver = o.solver ?? d.solver;
  const interp = makeInterpolant(interpName);

  const started = Date.now();
  const { file: ckptFile, prev } = await openCheckpoint(o.checkpointDir, 'pretrain', {
    resume: o.resume ?? false,
  });

  const ds = o.dataset ?? (await loadDataset(o.data, { limit: o.limit }));
  const inputShape = ds.shape;
  const loader = new BatchLoader(ds, { batchSize, shuffle: true, dropLast: true, seed });
  const stepsPerEpoch = loader.batchesPerEpoch;
  if (stepsPerEpoch < 1)
    throw new Error(`dataset ${o.data} has ${ds.n} images, fewer than one batch of ${batchSize}`);
  const totalSteps = Math.min(epochs * stepsPerEpoch, o.maxSteps ?? Infinity);

  const runConfig: Record<string, Json> = {
    data: o.data,
    limit: o.limit ?? null,
    net: net as unknown as Json,
    interpolant: interpName,
    batchSize,
    seed,
    inputShape: [...inputShape],
    epochs,
    lr,
  };

  const built = buildVelocityNet({
    kind: net.kind,
    preset: net.preset,
    inputShape,
    batch: batchSize,
    seed,
    overrides: net.overrides,
  });
  const params = ParamStore.fromGraph(built.graph, built.paramNames);
  const opt = new Adam({});
  const ema = new Ema(params, { decay: emaDecay, warmup: true });
  const loop = new TrainingLoop({
    phase: 'pretrain',
    checkpointDir: o.checkpointDir,
    file: ckptFile,
    prev,
    config: runConfig,
    // epochs and lr may change on resume (train longer, anneal by hand); the rest shapes the run.
    fixed: ['data', 'limit', 'net', 'interpolant', 'batchSize', 'seed', 'inputShape'],
    params,
    optimizer: opt,
    ema,
    loader,
    epochs,
    totalSteps,
    stats: { epoch: -1, sum: 0, count: 0 },
    checkpointEvery: every,
    checkpointMinutes: o.checkpointMinutes,
    signal: o.signal,
    onStep: o.onStep,
  });
  const resumedFromStep = prev ? loop.globalStep : undefined;

  const step = await GradientStep.create(buildFlowMatchingLossGraph(built.graph), {
    loss: 'loss',
    params: built.paramNames,
    session: { device: o.device, threads: o.threads },
  });
  try {
    await loop.run(
      async (batch, globalStep) => {
        // Per-step noise stream from (seed, step): a resumed run draws what the original would.
        const rng = new Rng(`${seed}:fm:${globalStep}`);
        const fm = flowMatchingBatch(interp, batch.x, batch.n, rng);
        const img: [number, number, number, number] = [batch.n, ...inputShape];
        const res = await step.run(params, {
          x: { dtype: 'float32', dims: img, data: fm.xt },
          t: { dtype: 'float32', dims: [batch.n], data: fm.t },
          u: { dtype: 'float32', dims: img, data: fm.ut },
        });
        if (!Number.isFinite(res.loss))
          throw new Error(`pretrain: loss is ${res.loss} at step ${globalStep}; lower the lr`);
        if (gradClip > 0) clipGradNorm(res.grads, gradClip);
        opt.step(params, res.grads, lr);
        ema.update(params);
        return { loss: res.loss, lr };
      },
      async (epoch, started) => {
        const s = loop.stats;
        await o.onEpoch?.({
          phase: 'pretrain',
          epoch,
          epochs,
          meanLoss: s.count ? s.sum / s.count : NaN,
          seconds: (Date.now() - started) / 1000,
          metrics: {},
        });
      },
    );
  } finally {
    await step.release();
  }
  const globalStep = loop.globalStep;
  const lastLoss = loop.lastLoss;
  const modelDir = await writePretrainedModel(o, {
    net,
    interpName,
    inputShape,
    seed,
    emaWeights: ema.shadow,
    headSpec,
    solver,
    classes: ds.classes,
    provenance: { phase: 'pretrain', steps: globalStep, flowMatchingLoss: lastLoss, emaDecay },
  });
  return {
    modelDir,
    checkpoint: ckptFile,
    steps: globalStep,
    epochs: Math.ceil(globalStep / stepsPerEpoch),
    finalLoss: lastLoss,
    resumedFromStep,
    seconds: (Date.now() - started) / 1000,
  };
}

/** What pretrain exports: the run's settings, the EMA weights, and the provenance to record. */
interface PretrainedExport {
  net: NetSpec;
  interpName: InterpolantName;
  inputShape: [number, number, number];
  seed: number;
  emaWeights: ParamStore;
  headSpec: NonNullable<PretrainOptions['head']>;
  solver: NonNullable<PretrainOptions['solver']>;
  classes: readonly string[];
  provenance: Record<string, unknown>;
}

/**
 * The pretrained model directory: the EMA weights in a symbolic-batch copy of the net, plus a
 * fresh (untrained) head that fine-tuning trains.
 */
async function writePretrainedModel(o: PretrainOptions, x: PretrainedExport): Promise<string> {
  const exportNet = buildVelocityNet({
    kind: x.net.kind,
    preset: x.net.preset,
    inputShape: x.inputShape,
    seed: x.seed,
    overrides: x.net.overrides,
  });
  const velocity = withParamNames(x.emaWeights.writeTo(exportNet.graph), exportNet.paramNames);
  const [channels, height, width] = x.inputShape;
  return writeModelWithFreshHead(
    o.out,
    {
      name: o.name ?? 'prg-pretrained',
      version: o.version ?? '0.1.0',
      description: `flow pretrained by ${x.interpName} flow matching on ${o.data}; head untrained`,
      velocity: {
        kind: x.net.kind,
        preset: x.net.preset,
        params: exportNet.params,
        config: exportNet.config as unknown as Record<string, unknown>,
      },
      interpolant: x.interpName,
      solver: x.solver,
      input: { channels, height, width, normalization: 'minus-one-one' },
      featurePool: x.headSpec.featurePool,
      classes: [...x.classes],
      provenance: provenance(o.data, x.provenance),
    },
    velocity,
    { kind: x.headSpec.kind, hidden: x.headSpec.hidden, seed: x.seed + 1 },
    { overwrite: o.overwrite },
  );
}
