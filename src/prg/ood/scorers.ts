/**
 * OOD scorers plugged into a loaded model (src/prg/inference.ts `OodScorer`), built from the
 * model directory's ood.json (written by fitOod, fit.ts). Every score is oriented so that higher
 * = more in-distribution; a client is flagged when score < the threshold in manifest.ood.
 *
 *   msp, energy          computed by inference.ts from the logits
 *   mahalanobis          −min_k Mahalanobis² of the head's input (x_{t*}, pooled or flattened)
 *   mahalanobis_hidden   the same on the head's tanh hidden layer
 *   relative_mahalanobis[_hidden]  the same minus the distance to one class-agnostic Gaussian
 *                        (Ren et al. 2021; mahalanobis.ts relativeMahalanobisGraph)
 *   likelihood           −bits/dim under the flow (likelihood.ts)
 *   complexity_ratio     PNG bits/dim − model bits/dim: log₂ of the likelihood ratio between the
 *                        flow and a universal compressor, per dimension (Serrà et al. 2020)
 */
import { Graph } from '../../engine/onnx/types';
import { Device } from '../../engine/runtime/device';
import { Feeds, SessionLease, sessionCache } from '../../engine/runtime/session';
import type { ImageBatch } from '../inference-api';
import type { OodContext, OodScorer } from '../inference';
import type { LoadedModelDir } from '../model-dir/io';
import { pngBitsPerDim } from './complexity';
import { headHiddenGraph } from './head-hidden';
import { LikelihoodEstimator, LikelihoodOptions, LikelihoodResult } from './likelihood';
import { DeepFeatureSpec, deepMahalanobisGraph } from './deep';
import {
  TiedGaussian,
  mahalanobisGraph,
  relativeMahalanobisGraph,
  tiedGaussianFromJson,
} from './mahalanobis';
import { EnsembleStats, OodStatsFile, parseOodStats } from './stats';

export { headHiddenGraph };

export interface ScorerOptions {
  device?: Device;
  threads?: number;
  /** Leave out the ensemble when a component is unavailable (ood-eval without bits/dim). */
  partial?: boolean;
}

/** Lazily acquired session from the shared cache, released with the scorer. */
export class LazySession {
  private lease?: Promise<SessionLease>;
  constructor(
    private readonly graph: () => Graph,
    private readonly opts: ScorerOptions,
  ) {}
  async run(feeds: Parameters<SessionLease['session']['run']>[0]) {
    this.lease ??= sessionCache.acquire(this.graph(), this.opts);
    return (await this.lease).session.run(feeds);
  }
  async release() {
    const l = this.lease;
    this.lease = undefined;
    if (l) await (await l.catch(() => null))?.release();
  }
}

/**
 * The head's tanh hidden layer of a batch of head inputs [n, D], computed once per forward pass
 * and shared by the scorers of that layer (keyed by the features array, which every forward pass
 * creates anew).
 */
export class HeadHidden {
  private readonly session: LazySession;
  private memo = new WeakMap<Float32Array, Promise<Float32Array>>();
  constructor(head: Graph, opts: ScorerOptions) {
    this.session = new LazySession(() => headHiddenGraph(head), opts);
  }
  of(features: Float32Array, n: number): Promise<Float32Array> {
    let r = this.memo.get(features);
    if (!r) {
      r = this.session
        .run({ features: { dtype: 'float32', dims: [n, features.length / n], data: features } })
        .then((o) => o.hidden.data as Float32Array);
      this.memo.set(features, r);
    }
    return r;
  }
  release(): Promise<void> {
    return this.session.release();
  }
}

export class MahalanobisScorer implements OodScorer {
  private readonly scoreSession: LazySession;
  constructor(
    readonly name: string,
    readonly stats: TiedGaussian,
    /** The head's hidden layer when scoring it; absent = the head's input. */
    private readonly hidden: HeadHidden | undefined,
    opts: ScorerOptions,
    /** The class-agnostic Gaussian: given, the score is the relative Mahalanobis score. */
    background?: TiedGaussian,
  ) {
    this.scoreSession = new LazySession(
      () =>
        background
          ? relativeMahalanobisGraph(stats, background, name)
          : mahalanobisGraph(stats, name),
      opts,
    );
  }

  async score(ctx: Pick<OodContext, 'features' | 'batch'>): Promise<Float32Array> {
    const n = ctx.batch.n;
    const f = this.hidden ? await this.hidden.of(ctx.features, n) : ctx.features;
    const dim = f.length / n;
    if (dim !== this.stats.dim)
      throw new Error(
        `${this.name}: features have ${dim} values, the fitted stats ${this.stats.dim}`,
      );
    const out = await this.scoreSession.run({
      features: { dtype: 'float32', dims: [n, dim], data: f },
    });
    return out.score.data as Float32Array;
  }

  async release(): Promise<void> {
    await this.scoreSession.release();
    await this.hidden?.release();
  }
}

/**
 * The feeds of the deep-feature graphs (deep.ts) for a batch: the images, x_{t*} flattened and
 * the head's input. When the model pools its features, x_{t*} is not the head's input, so it is
 * computed by a second forward pass at pool = null.
 */
export async function deepFeeds(
  ctx: Pick<OodContext, 'features' | 'batch' | 'model'>,
  shape: [number, number, number],
): Promise<Feeds> {
  const n = ctx.batch.n;
  const D = shape[0] * shape[1] * shape[2];
  const xt =
    ctx.model.manifest.featurePool === null
      ? ctx.features
      : (await ctx.model.latentFeatures(ctx.batch, { pool: null })).data;
  return {
    images: { dtype: 'float32', dims: [n, ...shape], data: ctx.batch.data },
    xt: { dtype: 'float32', dims: [n, D], data: xt },
    features: { dtype: 'float32', dims: [n, ctx.features.length / n], data: ctx.features },
  };
}

/** `mahalanobis_deep` (deep.ts): one ONNX graph from the image and x_{t*} to the score. */
export class DeepMahalanobisScorer implements OodScorer {
  readonly name = 'mahalanobis_deep';
  private readonly session: LazySession;
  private readonly shape: [number, number, number];
  constructor(
    model: Pick<LoadedModelDir, 'velocity' | 'head' | 'manifest'>,
    readonly spec: DeepFeatureSpec,
    readonly stats: TiedGaussian,
    opts: ScorerOptions,
  ) {
    const { channels, height, width } = model.manifest.input;
    this.shape = [channels, height, width];
    this.session = new LazySession(
      () => deepMahalanobisGraph(model.velocity, model.head, spec, this.shape, stats),
      opts,
    );
  }
  async score(ctx: Pick<OodContext, 'features' | 'batch' | 'model'>): Promise<Float32Array> {
    const feeds = await deepFeeds(ctx, this.shape);
    if (!this.spec.hidden) delete feeds.features;
    const out = await this.session.run(feeds);
    return out.score.data as Float32Array;
  }
  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * Bits/dim per batch, computed once and shared by the likelihood and complexity scorers (keyed by
 * the batch object inference passes to every scorer).
 */
export class BitsPerDim {
  private est?: Promise<LikelihoodEstimator>;
  private memo = new WeakMap<ImageBatch, Promise<LikelihoodResult>>();
  constructor(
    private readonly velocity: Graph,
    readonly options: LikelihoodOptions,
  ) {}
  of(batch: ImageBatch): Promise<LikelihoodResult> {
    let r = this.memo.get(batch);
    if (!r) {
      this.est ??= LikelihoodEstimator.create(this.velocity, this.options);
      const est = this.est;
      r = est.then((e) => e.evaluate(batch.data, batch.n));
      this.memo.set(batch, r);
    }
    return r;
  }
  async release(): Promise<void> {
    const e = this.est;
    this.est = undefined;
    if (e) await (await e.catch(() => null))?.release();
  }
}

export class LikelihoodScorer implements OodScorer {
  readonly name = 'likelihood';
  constructor(private readonly bpd: BitsPerDim) {}
  async score(ctx: Pick<OodContext, 'batch'>): Promise<Float32Array> {
    const r = await this.bpd.of(ctx.batch);
    return Float32Array.from(r.bitsPerDim, (v) => -v);
  }
  async release(): Promise<void> {
    await this.bpd.release();
  }
}

export class ComplexityRatioScorer implements OodScorer {
  readonly name = 'complexity_ratio';
  constructor(
    private readonly bpd: BitsPerDim,
    private readonly shape: [number, number, number],
  ) {}
  async score(ctx: Pick<OodContext, 'batch'>): Promise<Float32Array> {
    const [r, png] = await Promise.all([
      this.bpd.of(ctx.batch),
      pngBitsPerDim(ctx.batch.data, ctx.batch.n, this.shape),
    ]);
    return Float32Array.from(r.bitsPerDim, (v, i) => png[i] - v);
  }
  async release(): Promise<void> {
    await this.bpd.release();
  }
}

/** A scorer whose result is computed once per batch object (the ensemble reuses it). */
class Memo implements OodScorer {
  private memo = new WeakMap<ImageBatch, Promise<Float32Array>>();
  constructor(readonly inner: OodScorer) {}
  get name(): string {
    return this.inner.name;
  }
  score(ctx: OodContext): Promise<Float32Array> {
    let r = this.memo.get(ctx.batch);
    if (!r) {
      r = this.inner.score(ctx);
      this.memo.set(ctx.batch, r);
    }
    return r;
  }
  async release(): Promise<void> {
    await this.inner.release?.();
  }
}

/**
 * ensemble = (1/m) Σ_i (s_i − mean_i)/std_i over its components: each score standardised on
 * held-out in-distribution images, then averaged. It needs no out-of-distribution data (unlike
 * Lee et al.'s logistic-regression weights), and averaging scores that fail on different inputs
 * (class-conditional feature distances, complexity-corrected likelihood) lowers the chance that
 * an outlier passes all of them.
 */
export function ensembleOf(
  e: EnsembleStats,
  scores: Record<string, ArrayLike<number>>,
  n: number,
): Float32Array {
  const out = new Float32Array(n);
  e.components.forEach((c, j) => {
    const s = scores[c];
    if (!s) throw new Error(`ensemble: component score ${c} is missing`);
    for (let i = 0; i < n; i++) out[i] += (s[i] - e.mean[j]) / e.std[j] / e.components.length;
  });
  return out;
}

/** Component statistics for the ensemble from held-out scores. */
export function fitEnsemble(
  components: string[],
  scores: Record<string, ArrayLike<number>>,
): EnsembleStats {
  const mean: number[] = [];
  const std: number[] = [];
  for (const c of components) {
    const s = scores[c];
    if (!s || s.length < 2) throw new Error(`ensemble: needs held-out scores for ${c}`);
    let m = 0;
    for (let i = 0; i < s.length; i++) m += s[i];
    m /= s.length;
    let v = 0;
    for (let i = 0; i < s.length; i++) v += (s[i] - m) ** 2;
    const sd = Math.sqrt(v / (s.length - 1));
    mean.push(m);
    std.push(sd > 0 ? sd : 1);
  }
  return { components, mean, std };
}

export class EnsembleScorer implements OodScorer {
  readonly name = 'ensemble';
  constructor(
    private readonly stats: EnsembleStats,
    private readonly parts: OodScorer[],
  ) {}
  async score(ctx: OodContext): Promise<Float32Array> {
    const s: Record<string, Float32Array> = {};
    for (const p of this.parts) s[p.name] = await p.score(ctx);
    return ensembleOf(this.stats, s, ctx.batch.n);
  }
}

/** Scorers for a model from parsed ood.json (the stats may lack layers or likelihood). */
export function scorersFromStats(
  stats: OodStatsFile,
  model: Pick<LoadedModelDir, 'velocity' | 'head' | 'manifest'>,
  opts: ScorerOptions = {},
): OodScorer[] {
  const out: OodScorer[] = [];
  const { features, hidden, background } = stats.mahalanobis;
  // One hidden-layer computation per batch for both hidden-layer scores.
  const headHidden = hidden ? new HeadHidden(model.head, opts) : undefined;
  const layers = [
    { name: 'mahalanobis', stats: features, bg: background?.features, head: undefined },
    { name: 'mahalanobis_hidden', stats: hidden, bg: background?.hidden, head: headHidden },
  ];
  for (const l of layers) {
    if (!l.stats) continue;
    const g = tiedGaussianFromJson(l.stats, l.name);
    out.push(new MahalanobisScorer(l.name, g, l.head, opts));
    if (l.bg) {
      const rel = `relative_${l.name}`;
      out.push(new MahalanobisScorer(rel, g, l.head, opts, tiedGaussianFromJson(l.bg, rel)));
    }
  }
  const deep = stats.mahalanobis.deep;
  if (deep)
    out.push(
      new DeepMahalanobisScorer(
        model,
        deep.features,
        tiedGaussianFromJson(deep.gaussian, 'mahalanobis_deep'),
        opts,
      ),
    );
  if (stats.likelihood) {
    const bpd = new BitsPerDim(model.velocity, {
      ...stats.likelihood,
      session: { device: opts.device, threads: opts.threads },
    });
    out.push(new LikelihoodScorer(bpd));
    const { channels, height, width } = model.manifest.input;
    if (channels === 1 || channels === 3)
      out.push(new ComplexityRatioScorer(bpd, [channels, height, width]));
  }
  const ens = stats.ensemble;
  if (!ens) return out;
  const memo = out.map((sc) => new Memo(sc));
  if (opts.partial && !ens.components.every((c) => memo.some((m) => m.name === c))) return out;
  const parts = ens.components.map((c) => {
    const p = memo.find((m) => m.name === c);
    if (!p)
      throw new Error(
        `ood.json: ensemble component ${c} has no scorer (${memo.map((m) => m.name)})`,
      );
    return p;
  });
  return [...memo, new EnsembleScorer(ens, parts)];
}

/**
 * The scorers `ensemble` averages, among those a model has (msp/energy are left out). The
 * relative scores are not among them: on x_{t*} the relative score is the best one for Fashion-MNIST
 * vs MNIST and the worst for MNIST vs Fashion-MNIST (docs/ood.md), so it is a per-model choice
 * (fitOod's selectPrimaryWith), not a default.
 */
export const ENSEMBLE_COMPONENTS = ['mahalanobis', 'mahalanobis_hidden', 'complexity_ratio'];

/**
 * The factory for `LoadOptions.oodFactories` (src/prg/inference.ts): a model directory with an
 * ood.json gets its Mahalanobis and likelihood scorers; without one, none.
 */
export async function oodScorerFactory(
  model: LoadedModelDir,
  opts: ScorerOptions = {},
): Promise<OodScorer[]> {
  if (model.ood === undefined) return [];
  const stats = parseOodStats(model.ood, `${model.dir}/${model.manifest.files.ood}`);
  return scorersFromStats(stats, model, opts);
}
