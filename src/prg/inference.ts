/**
 * A loaded PRG model (PrgModelApi, src/prg/inference-api.ts).
 *
 * classify(x) (paper §3.1): integrate the learned velocity from the image (t = 0) to t* in K
 * steps, take x_{t*} (flattened, or pooled per channel to n×n), apply the head, softmax.
 * Fixed-step solvers (euler, midpoint, rk4) run as one unrolled ONNX graph (features.ts); dopri5
 * (paper App. C.2) is adaptive, so it runs numerically (src/prg/solvers solveOde, atol = rtol =
 * 1e-5) step by step on a velocity session and then a small post-processing graph. One session is
 * cached per (solver, steps, t, pool, batch size) setting.
 *
 * Large velocity nets (weights above `LoadOptions.stepwiseAbove`, e.g. an imported SiT-XL/2 of
 * 2.7 GB) run every solver that second way ("stepwise"): one dynamic-batch velocity session,
 * the fixed-step ODE solved in JS (solveOde, the same Butcher tableaux and time grid as the
 * unrolled graph), then the post graph. Each unrolled setting is its own session, and ORT keeps
 * per-session copies of weights it rewrites at load (a constant-folded Transpose, pre-packed
 * GEMM weights), so a few cached settings of a large net would hold the weights several times;
 * stepwise, every K, batch and t share one velocity session and one copy.
 *
 * OOD scores: `msp` (max softmax probability) and `energy` (log Σ exp logits, i.e. −E(x), so
 * higher = more in-distribution) come from the logits; further scorers (Mahalanobis on features,
 * bits/dim, src/prg/ood) are given explicitly: `LoadOptions.oodFactories` (built per model
 * directory) or the constructor's scorer list. Sessions live in the model's GraphCache.
 */
import { Device } from '../engine/runtime/device';
import { Feeds } from '../engine/runtime/session';
import { Graph, Tensor, tensorByteLength } from '../engine/onnx/types';
import {
  ClassifyOptions,
  ClassifyOutput,
  FeatureOptions,
  FeatureOutput,
  ImageBatch,
  PrgModelApi,
  SolveOptions,
} from './inference-api';
import { ModelManifest, SolverName, classLabelProblem, imageInput } from './manifest';
import { InputError } from './input-error';
import { solveOde } from './solvers';
import { featureDim } from './model-dir/graph-check';
import { LoadedModelDir, readModelDir } from './model-dir/io';
import {
  FixedSolverName,
  buildFeatureGraph,
  buildPostGraph,
  buildTrajectoryGraph,
  checkSolve,
  isFixedSolver,
} from './features';
import { GraphCache } from './graph-cache';
import { poolProblem } from './heads/pool';
import {
  SampleOptions,
  buildSampleGraph,
  isFixed,
  resolveSample,
  sampleNoise,
} from './generation/sample';

export interface LoadOptions {
  device?: Device;
  threads?: number;
  /** Builders of extra OOD scorers for the model's directory (src/prg/ood's oodScorerFactory). */
  oodFactories?: OodScorerFactory[];
  /** Sessions kept alive at once (default 16); the least recently used idle one goes. */
  maxGraphs?: number;
  /**
   * Velocity nets with more bytes of weights than this run fixed-step solvers stepwise (one
   * shared velocity session, see the module comment) instead of as unrolled graphs. Default
   * STEPWISE_ABOVE (512 MiB); 0 = always stepwise, Infinity = never.
   */
  stepwiseAbove?: number;
}

/**
 * Default LoadOptions.stepwiseAbove: above the project's own nets and the torchcfm CIFAR-10 U-Net
 * (143 MB), for which an unrolled graph per setting is cheap and lets ORT optimise across steps;
 * below SiT-L (1.8 GB) and SiT-XL/2 (2.7 GB), whose copies per cached setting would not fit.
 */
export const STEPWISE_ABOVE = 512 * 2 ** 20;

/** Bytes of a graph's initializers, read from the tensors' shapes (weights on disk stay there). */
export function weightBytes(g: Graph): number {
  let bytes = 0;
  for (const t of g.initializers.values()) bytes += tensorByteLength(t);
  return bytes;
}

/** What an OOD scorer sees for a batch: the classify outputs plus the model. */
export interface OodContext {
  batch: ImageBatch;
  logits: Float32Array;
  probabilities: Float32Array;
  classes: number;
  /** The head's input for the manifest's setting: [n, D]. */
  features: Float32Array;
  model: PrgModel;
  opts: SolveOptions;
}

export interface OodScorer {
  /** Key in the oodScores record, e.g. "mahalanobis". */
  readonly name: string;
  /** Higher = more in-distribution (manifest.ood records the convention per score). */
  score(ctx: OodContext): Promise<Float32Array>;
  release?(): Promise<void>;
}

/** Builds scorers for a model directory (e.g. from its ood.json); [] when it has nothing to add. */
export type OodScorerFactory = (
  model: LoadedModelDir,
  opts: { device?: Device; threads?: number },
) => Promise<OodScorer[]>;

/** Largest batch one graph run takes; bigger batches are split. */
const MAX_CHUNK = 64;
/**
 * Images per encoder/decoder run of the VAE stage: SD's VAE at 256×256 holds 128×256×256 float32
 * activations (32 MiB per image per tensor), so a few images per run bound ORT's arena.
 */
const STAGE_CHUNK = 4;

function bucketOf(n: number): number {
  let b = 1;
  while (b < n) b *= 2;
  return b;
}

interface Resolved {
  solver: SolverName;
  steps: number;
  t: number;
  pool: number | null;
  /** The label fed to a class-conditional net (its null class by default); null: unconditional. */
  label: number | null;
}

export class PrgModel implements PrgModelApi {
  readonly id: string;
  private released = false;
  private readonly graphs: GraphCache;
  /** Values per flow input (the latent for models with a VAE stage). */
  private readonly imageSize: number;
  /** Values per image clients send (= imageSize without a preprocessing stage). */
  private readonly pixelSize: number;
  /** Fixed-step solvers run on one shared velocity session (LoadOptions.stepwiseAbove). */
  readonly stepwise: boolean;

  constructor(
    readonly loaded: LoadedModelDir,
    private readonly opts: LoadOptions,
    private readonly oodScorers: OodScorer[],
  ) {
    this.id = `${loaded.manifest.name}@${loaded.manifest.version}`;
    this.graphs = new GraphCache({ device: opts.device, threads: opts.threads }, opts.maxGraphs);
    const { channels, height, width } = loaded.manifest.input;
    this.imageSize = channels * height * width;
    const img = imageInput(loaded.manifest);
    this.pixelSize = img.channels * img.height * img.width;
    this.stepwise = weightBytes(loaded.velocity) > (opts.stepwiseAbove ?? STEPWISE_ABOVE);
  }

  /** ORT sessions this model holds now (its GraphCache). */
  get liveSessions(): number {
    return this.graphs.size;
  }

  /** Fixed-step solvers unrolled into one graph per setting (not stepwise). */
  private unrolled(solver: SolverName): solver is FixedSolverName {
    return isFixedSolver(solver) && !this.stepwise;
  }

  get manifest(): ModelManifest {
    return this.loaded.manifest;
  }

  get velocity(): Graph {
    return this.loaded.velocity;
  }

  get head(): Graph {
    return this.loaded.head;
  }

  /** Names of the OOD scores this model returns. */
  get oodScoreNames(): string[] {
    return ['msp', 'energy', ...this.oodScorers.map((s) => s.name)];
  }

  private resolve(o: FeatureOptions = {}): Resolved {
    const m = this.manifest.solver;
    const solver = o.solver ?? m.name;
    const steps = o.steps ?? m.steps;
    const t = o.t ?? m.tStar;
    const pool = o.pool === undefined ? this.manifest.featurePool : o.pool;
    if (!isFixedSolver(solver) && solver !== 'dopri5')
      throw new Error(`solver ${String(solver)}: use euler, midpoint, rk4 or dopri5`);
    checkSolve(isFixedSolver(solver) ? solver : 'euler', steps, 0, t);
    const bad = pool === null ? null : poolProblem(pool, this.manifest.input);
    if (bad) throw new Error(`pool=${pool}: ${bad}`);
    return { solver, steps, t, pool, label: this.labelOf(o.classLabel) };
  }

  /** The class label to feed: the request's (checked), else the null class; null if unconditional. */
  private labelOf(classLabel: number | undefined): number | null {
    const labels = this.manifest.architecture.velocity.labels;
    if (classLabel === undefined) return labels ? labels.nullClass : null;
    const bad = classLabelProblem(labels, classLabel);
    if (bad) throw new InputError('INVALID_CLASS_LABEL', `model ${this.id}: ${bad}`);
    return classLabel;
  }

  /** The `y` feed ([n] int64, all `label`) of a class-conditional net; {} when unconditional. */
  private labelFeed(label: number | null, n: number): Feeds {
    if (label === null) return {};
    return { y: { dtype: 'int64', dims: [n], data: new BigInt64Array(n).fill(BigInt(label)) } };
  }

  /** `latent`: a batch of flow inputs (after the stage) rather than of client images. */
  private checkBatch(batch: ImageBatch, latent = false): void {
    if (this.released) throw new Error(`model ${this.id}: already released`);
    if (!Number.isInteger(batch.n) || batch.n < 1)
      throw new Error(`batch: n=${batch.n} must be a positive integer`);
    if (!(batch.data instanceof Float32Array))
      throw new Error('batch: data must be a Float32Array');
    const size = latent ? this.imageSize : this.pixelSize;
    if (batch.data.length !== batch.n * size) {
      const { channels, height, width } = latent ? this.manifest.input : imageInput(this.manifest);
      throw new Error(
        `batch: ${batch.data.length} values for n=${batch.n} ${latent ? 'latents' : 'images'} of ` +
          `${channels}×${height}×${width} (want ${batch.n * size})`,
      );
    }
  }

  /** Run a stage graph (encoder or decoder, symbolic batch) over `n` items in small chunks. */
  private async runStage(
    which: 'encoder' | 'decoder',
    data: Float32Array,
    n: number,
  ): Promise<Float32Array> {
    const g = this.loaded[which];
    if (!g) throw new Error(`model ${this.id}: has no ${which}`);
    const [inName, outName] = which === 'encoder' ? ['image', 'latent'] : ['latent', 'image'];
    const img = imageInput(this.manifest);
    const lat = this.manifest.input;
    const [inShape, inSize, outSize] =
      which === 'encoder'
        ? [[img.channels, img.height, img.width], this.pixelSize, this.imageSize]
        : [[lat.channels, lat.height, lat.width], this.imageSize, this.pixelSize];
    const out = new Float32Array(n * outSize);
    for (let s = 0; s < n; s += STAGE_CHUNK) {
      const m = Math.min(STAGE_CHUNK, n - s);
      const res = await this.runGraph(`stage|${which}`, () => g, {
        [inName]: {
          dtype: 'float32',
          dims: [m, ...inShape],
          data: data.subarray(s * inSize, (s + m) * inSize),
        },
      });
      out.set(res[outName].data as Float32Array, s * outSize);
    }
    return out;
  }

  /**
   * Client images → flow inputs: through the frozen VAE encoder when the model has the stage
   * (manifest.preprocess), else unchanged.
   */
  async toFlowInput(batch: ImageBatch): Promise<ImageBatch> {
    this.checkBatch(batch);
    if (!this.manifest.preprocess) return batch;
    return { data: await this.runStage('encoder', batch.data, batch.n), n: batch.n };
  }

  private imageTensor(data: Float32Array, n: number): Tensor {
    const { channels, height, width } = this.manifest.input;
    return { dtype: 'float32', dims: [n, channels, height, width], data };
  }

  /** Run a cached graph (built on first use by `make`). */
  private runGraph(key: string, make: () => Graph, feeds: Feeds): Promise<Feeds> {
    return this.graphs.run(key, make, feeds);
  }

  /**
   * x at t1 for each image from x at t0, solved in JS on the velocity session; t1 < t0 runs
   * backwards (generation). Fixed-step solvers take `steps` equal steps (the unrolled graph's
   * grid); dopri5 adapts, starting from a step of |t1 − t0| / steps. `label` feeds a
   * class-conditional net's `y` (null: unconditional net).
   */
  private async solveNumeric(
    x: Float32Array,
    n: number,
    t0: number,
    t1: number,
    solve: { solver: SolverName; steps: number },
    label: number | null,
  ) {
    const tv = new Float32Array(n);
    const labelFeed = this.labelFeed(label, n);
    const f = async (z: Float32Array, t: number) => {
      tv.fill(t);
      const out = await this.runGraph('velocity', () => this.velocity, {
        x: this.imageTensor(z, n),
        t: { dtype: 'float32', dims: [n], data: tv },
        ...labelFeed,
      });
      return out.v.data as Float32Array;
    };
    const { solver, steps } = solve;
    const opts =
      solver === 'dopri5'
        ? { solver, t0, t1, firstStep: Math.abs(t1 - t0) / steps }
        : { solver, t0, t1, steps };
    return (await solveOde(f, x, opts)).x;
  }

  /**
   * Run `run` over the batch in chunks of at most MAX_CHUNK images, each padded (with zeros) to
   * a power-of-two size, so fixed-batch graphs are built for a handful of sizes only; every output
   * has the batch as its first dim and is cut back and concatenated.
   */
  private async chunked(
    batch: ImageBatch,
    run: (x: Tensor, size: number) => Promise<Feeds>,
  ): Promise<Feeds> {
    const parts: Feeds[] = [];
    const counts: number[] = [];
    for (let start = 0; start < batch.n; start += MAX_CHUNK) {
      const m = Math.min(MAX_CHUNK, batch.n - start);
      const size = bucketOf(m);
      const data = new Float32Array(size * this.imageSize);
      data.set(batch.data.subarray(start * this.imageSize, (start + m) * this.imageSize));
      parts.push(await run(this.imageTensor(data, size), size));
      counts.push(m);
    }
    const out: Feeds = {};
    for (const name of Object.keys(parts[0])) {
      const first = parts[0][name];
      const row = first.data.length / first.dims[0];
      const data = new Float32Array(batch.n * row);
      let off = 0;
      parts.forEach((p, i) => {
        data.set((p[name].data as Float32Array).subarray(0, counts[i] * row), off);
        off += counts[i] * row;
      });
      out[name] = { dtype: 'float32', dims: [batch.n, ...first.dims.slice(1)], data };
    }
    return out;
  }

  /** Features and (with head) logits/probabilities for a resolved setting. */
  private async forward(batch: ImageBatch, r: Resolved, withHead: boolean): Promise<Feeds> {
    this.checkBatch(batch, true);
    const head = withHead ? this.head : undefined;
    const tag = `${withHead ? 'cls' : 'feat'}|${r.pool}`;
    if (this.unrolled(r.solver)) {
      const solver = r.solver;
      return this.chunked(batch, (x, size) =>
        this.runGraph(
          `${tag}|${solver}|${r.steps}|${r.t}|${size}`,
          () =>
            buildFeatureGraph(this.velocity, {
              solver,
              steps: r.steps,
              tStar: r.t,
              pool: r.pool,
              head,
              batch: size,
            }),
          { x, ...this.labelFeed(r.label, size) },
        ),
      );
    }
    const xt = await this.solveNumeric(batch.data, batch.n, 0, r.t, r, r.label);
    const { channels, height, width } = this.manifest.input;
    return this.runGraph(
      `post|${tag}`,
      () => buildPostGraph(['N', channels, height, width], r.pool, head),
      { xt: this.imageTensor(xt, batch.n) },
    );
  }

  async classify(batch: ImageBatch, opts: ClassifyOptions = {}): Promise<ClassifyOutput> {
    const { ood, ...solve } = opts;
    const r = this.resolve({ ...solve, t: undefined, pool: undefined });
    batch = await this.toFlowInput(batch);
    const out = await this.forward(batch, r, true);
    return {
      logits: out.logits.data as Float32Array,
      probabilities: out.probabilities.data as Float32Array,
      classes: this.manifest.classes.length,
      ...(ood?.length ? { ood: await this.scoresOf(out, batch, solve, new Set(ood)) } : {}),
    };
  }

  async features(batch: ImageBatch, opts: FeatureOptions = {}): Promise<FeatureOutput> {
    return this.latentFeatures(await this.toFlowInput(batch), opts);
  }

  /** features() of flow inputs (latents, for a model with a VAE stage; OOD scorers use it). */
  async latentFeatures(batch: ImageBatch, opts: FeatureOptions = {}): Promise<FeatureOutput> {
    const r = this.resolve(opts);
    // The manifest's setting shares the classify graph (its features output).
    const isDefault = r.pool === this.manifest.featurePool && r.t === this.manifest.solver.tStar;
    const out = await this.forward(batch, r, isDefault);
    const f = out.features;
    return { data: f.data as Float32Array, shape: [...f.dims] };
  }

  async oodScores(
    batch: ImageBatch,
    opts: SolveOptions = {},
  ): Promise<Record<string, Float32Array>> {
    const r = this.resolve({ ...opts, t: undefined, pool: undefined });
    batch = await this.toFlowInput(batch);
    return this.scoresOf(await this.forward(batch, r, true), batch, opts);
  }

  /** OOD scores from one classify forward pass: all of them, or those named in `only`. */
  private async scoresOf(
    out: Feeds,
    batch: ImageBatch,
    opts: SolveOptions,
    only?: Set<string>,
  ): Promise<Record<string, Float32Array>> {
    const logits = out.logits.data as Float32Array;
    const probabilities = out.probabilities.data as Float32Array;
    const k = this.manifest.classes.length;
    const msp = new Float32Array(batch.n);
    const energy = new Float32Array(batch.n);
    for (let i = 0; i < batch.n; i++) {
      let pmax = -Infinity;
      let lmax = -Infinity;
      for (let j = 0; j < k; j++) {
        pmax = Math.max(pmax, probabilities[i * k + j]);
        lmax = Math.max(lmax, logits[i * k + j]);
      }
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.exp(logits[i * k + j] - lmax);
      msp[i] = pmax;
      // Energy score (Liu et al. 2020): −E(x) = log Σ_j exp(logit_j); higher = in-distribution.
      energy[i] = lmax + Math.log(s);
    }
    const scores: Record<string, Float32Array> = { msp, energy };
    const ctx: OodContext = {
      batch,
      logits,
      probabilities,
      classes: k,
      features: out.features.data as Float32Array,
      model: this,
      opts,
    };
    // Scorers such as the likelihood cost far more than the forward pass: run only those asked.
    for (const s of this.oodScorers)
      if (!only || only.has(s.name)) scores[s.name] = await s.score(ctx);
    if (only) for (const name of Object.keys(scores)) if (!only.has(name)) delete scores[name];
    return scores;
  }

  /**
   * Frames x_t from t = 0 to 1. With a VAE stage the image is encoded first and, when the model
   * has the decoder, every frame is decoded back to an image; without it the latent frames are
   * returned (their channels shown as they are).
   */
  async trajectory(
    image: Float32Array,
    opts: SolveOptions & { frames?: number } = {},
  ): Promise<FeatureOutput> {
    this.checkBatch({ data: image, n: 1 });
    const frames = opts.frames ?? 8;
    if (!Number.isInteger(frames) || frames < 2 || frames > 200)
      throw new Error(`frames=${frames}: use an integer in [2, 200]`);
    if (!this.manifest.preprocess) return this.latentTrajectory(image, opts, frames);
    const lat = await this.latentTrajectory(
      (await this.toFlowInput({ data: image, n: 1 })).data,
      opts,
      frames,
    );
    if (!this.loaded.decoder) return lat;
    const img = imageInput(this.manifest);
    return {
      data: await this.runStage('decoder', lat.data, frames),
      shape: [frames, img.channels, img.height, img.width],
    };
  }

  private async latentTrajectory(
    image: Float32Array,
    opts: SolveOptions,
    frames: number,
  ): Promise<FeatureOutput> {
    const r = this.resolve({ solver: opts.solver, steps: opts.steps, classLabel: opts.classLabel });
    const out = new Float32Array(frames * this.imageSize);
    out.set(image, 0);
    if (this.unrolled(r.solver)) {
      const solver = r.solver;
      const res = await this.runGraph(
        `traj|${solver}|${r.steps}|${frames}`,
        () => buildTrajectoryGraph(this.velocity, { solver, steps: r.steps, frames }),
        { x: this.imageTensor(image, 1), ...this.labelFeed(r.label, 1) },
      );
      for (let i = 1; i < frames; i++)
        out.set(res[`frame_${i}`].data as Float32Array, i * this.imageSize);
    } else {
      let x = image;
      const segs = frames - 1;
      // Fixed-step solvers: the trajectory graph's ceil(steps / segments) steps per segment.
      const steps = isFixedSolver(r.solver) ? Math.max(1, Math.ceil(r.steps / segs)) : r.steps;
      for (let i = 0; i < segs; i++) {
        const seg = { solver: r.solver, steps };
        x = await this.solveNumeric(x, 1, i / segs, (i + 1) / segs, seg, r.label);
        out.set(x, (i + 1) * this.imageSize);
      }
    }
    const { channels, height, width } = this.manifest.input;
    return { data: out, shape: [frames, channels, height, width] };
  }

  /**
   * n images generated by the forward ODE from x_1 ~ N(0, I) (seeded) at t = 1 to t = 0
   * (src/prg/generation/sample.ts): [n, C, H, W] in the model's input space ([-1, 1] for data;
   * generated values may overshoot it).
   */
  async sample(opts: SampleOptions): Promise<FeatureOutput> {
    if (this.released) throw new Error(`model ${this.id}: already released`);
    const s = resolveSample(opts);
    const label = this.labelOf(opts.classLabel);
    const noise = sampleNoise(s.n, this.imageSize, s.seed);
    const { channels, height, width } = this.manifest.input;
    let data: Float32Array;
    if (isFixed(s.solver) && !this.stepwise) {
      const solver = s.solver;
      const out = await this.chunked({ data: noise, n: s.n }, (x, size) =>
        this.runGraph(
          `sample|${solver}|${s.steps}|${size}`,
          () => buildSampleGraph(this.velocity, { solver, steps: s.steps, batch: size }),
          { x, ...this.labelFeed(label, size) },
        ),
      );
      data = out.x0.data as Float32Array;
    } else data = await this.solveNumeric(noise, s.n, 1, 0, s, label);
    return { data, shape: [s.n, channels, height, width] };
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.graphs.clear();
    for (const s of this.oodScorers) await s.release?.();
  }
}

/** Load and validate a model directory; sessions are created lazily on first use. */
export async function loadPrgModel(dir: string, opts: LoadOptions = {}): Promise<PrgModel> {
  // Large velocity weights (external data) stay in their file: ORT reads them from there, so the
  // server holds no JS copy of them (SiT-XL/2: 2.7 GB). Small nets are inline and load as before.
  const loaded = await readModelDir(dir, { weights: 'by-reference' });
  // The head must take exactly what features() produces for the manifest's setting.
  featureDim(loaded.manifest);
  const scorers: OodScorer[] = [];
  for (const f of opts.oodFactories ?? [])
    scorers.push(...(await f(loaded, { device: opts.device, threads: opts.threads })));
  const names = new Set(['msp', 'energy']);
  for (const s of scorers) {
    if (names.has(s.name)) throw new Error(`OOD scorer ${s.name}: name used twice`);
    names.add(s.name);
  }
  return new PrgModel(loaded, opts, scorers);
}
