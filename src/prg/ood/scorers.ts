/**
 * OOD scorers plugged into a loaded model (src/prg/inference.ts `OodScorer`), built from the
 * model directory's ood.json (written by fitOod, fit.ts). Every score is oriented so that higher
 * = more in-distribution; a client is flagged when score < the threshold in manifest.ood.
 *
 *   msp, energy          computed by inference.ts from the logits
 *   mahalanobis          −min_k Mahalanobis² of the head's input (x_{t*}, pooled or flattened)
 *   mahalanobis_hidden   the same on the head's tanh hidden layer
 *   likelihood           −bits/dim under the flow (likelihood.ts)
 *   complexity_ratio     PNG bits/dim − model bits/dim: log₂ of the likelihood ratio between the
 *                        flow and a universal compressor, per dimension (Serrà et al. 2020)
 */
import { GraphBuilder } from '../../engine/onnx/builder';
import { pruneGraph } from '../../engine/onnx/graph-utils';
import { Graph } from '../../engine/onnx/types';
import { Device } from '../../engine/runtime/device';
import { SessionLease, sessionCache } from '../../engine/runtime/session';
import type { ImageBatch } from '../inference-api';
import type { OodContext, OodScorer } from '../inference';
import type { LoadedModelDir } from '../model-dir';
import { pngBitsPerDim } from './complexity';
import { LikelihoodEstimator, LikelihoodOptions, LikelihoodResult } from './likelihood';
import { TiedGaussian, mahalanobisGraph, tiedGaussianFromJson } from './mahalanobis';
import { OodStatsFile, parseOodStats } from './stats';

export interface ScorerOptions {
  device?: Device;
  threads?: number;
}

/** The head graph with its first tanh activation (the hidden layer, paper §3.1) as output. */
export function headHiddenGraph(head: Graph): Graph {
  const tanh = head.nodes.find((n) => n.op === 'Tanh');
  if (!tanh) throw new Error(`head ${head.name}: no Tanh node, so no hidden layer to score`);
  const b = GraphBuilder.from(head);
  b.output(b.value(tanh.outputs[0]), 'hidden');
  return pruneGraph(b.build(), ['hidden']);
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

export class MahalanobisScorer implements OodScorer {
  private readonly scoreSession: LazySession;
  private readonly hiddenSession?: LazySession;
  constructor(
    readonly name: string,
    readonly stats: TiedGaussian,
    /** The head graph when scoring its hidden layer; absent = the head's input. */
    head: Graph | undefined,
    opts: ScorerOptions,
  ) {
    this.scoreSession = new LazySession(() => mahalanobisGraph(stats, name), opts);
    if (head) this.hiddenSession = new LazySession(() => headHiddenGraph(head), opts);
  }

  async score(ctx: Pick<OodContext, 'features' | 'batch'>): Promise<Float32Array> {
    const n = ctx.batch.n;
    let f = ctx.features;
    let dim = f.length / n;
    if (this.hiddenSession) {
      const out = await this.hiddenSession.run({
        features: { dtype: 'float32', dims: [n, dim], data: f },
      });
      f = out.hidden.data as Float32Array;
      dim = f.length / n;
    }
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
    await this.hiddenSession?.release();
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

/** Scorers for a model from parsed ood.json (the stats may lack layers or likelihood). */
export function scorersFromStats(
  stats: OodStatsFile,
  model: Pick<LoadedModelDir, 'velocity' | 'head' | 'manifest'>,
  opts: ScorerOptions = {},
): OodScorer[] {
  const out: OodScorer[] = [];
  const { features, hidden } = stats.mahalanobis;
  if (features)
    out.push(new MahalanobisScorer('mahalanobis', tiedGaussianFromJson(features), undefined, opts));
  if (hidden)
    out.push(
      new MahalanobisScorer(
        'mahalanobis_hidden',
        tiedGaussianFromJson(hidden, 'mahalanobis_hidden'),
        model.head,
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
  return out;
}

/**
 * The factory for `registerOodScorerFactory` (src/prg/inference.ts): a model directory with an
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
