/**
 * A session over the VJP of a forward graph where some parameters are lifted to inputs and
 * gradients may also be taken with respect to ordinary inputs (the state x_k of a solver step,
 * for the adjoint walk) — GradientStep (src/engine/runtime) covers the parameters-only case.
 */
import { vjp } from '../../engine/autodiff';
import { promoteInitializers, pruneGraph } from '../../engine/onnx/graph-utils';
import { Graph } from '../../engine/onnx/types';
import { ParamStore } from '../../engine/runtime/params';
import { Feeds, SessionLease, SessionOptions, sessionCache } from '../../engine/runtime/session';
export { specializeBatch } from '../features';

export interface GradRunnerOptions {
  /** Values to differentiate: a scalar loss (seeded with 1) or outputs taking cotangent inputs. */
  of: string[];
  seed: 'ones' | 'input';
  /** Initializers lifted to inputs and differentiated. */
  params: readonly string[];
  /** Graph inputs to differentiate as well. */
  wrtInputs?: readonly string[];
  /** Forward values to return too. */
  outputs?: readonly string[];
  session?: SessionOptions;
}

export class GradRunner {
  private constructor(
    private readonly lease: SessionLease,
    readonly graph: Graph,
    readonly grads: Record<string, string>,
    readonly seeds: Record<string, string>,
    private readonly o: GradRunnerOptions,
  ) {}

  static build(
    forward: Graph,
    o: GradRunnerOptions,
  ): { graph: Graph; grads: Record<string, string>; seeds: Record<string, string> } {
    const promoted = promoteInitializers(forward, [...o.params]);
    const wrt = [...(o.wrtInputs ?? []), ...o.params];
    const res = vjp(promoted, { of: o.of, wrt, seed: o.seed });
    const keep = [
      ...(o.seed === 'ones' ? o.of : []),
      ...(o.outputs ?? []),
      ...wrt.map((w) => res.grads[w]),
    ];
    return { graph: pruneGraph(res.graph, [...new Set(keep)]), grads: res.grads, seeds: res.seeds };
  }

  static async create(forward: Graph, o: GradRunnerOptions): Promise<GradRunner> {
    const { graph, grads, seeds } = GradRunner.build(forward, o);
    const lease = await sessionCache.acquire(graph, o.session);
    return new GradRunner(lease, graph, grads, seeds, o);
  }

  /** Feeds the live parameters from `params` (views, no copy) plus `feeds`. */
  async run(
    params: ParamStore,
    feeds: Feeds,
  ): Promise<{ out: Feeds; grads: Map<string, Float32Array> }> {
    const all: Feeds = { ...feeds };
    const inputs = new Set(this.lease.session.inputNames);
    for (const n of this.o.params)
      if (inputs.has(n)) {
        const p = params.get(n);
        all[n] = { dtype: 'float32', dims: [...p.dims], data: p.data };
      }
    const wrt = [...(this.o.wrtInputs ?? []), ...this.o.params];
    const fetch = [
      ...(this.o.seed === 'ones' ? this.o.of : []),
      ...(this.o.outputs ?? []),
      ...wrt.map((w) => this.grads[w]),
    ];
    const out = await this.lease.session.run(all, [...new Set(fetch)]);
    const grads = new Map<string, Float32Array>();
    for (const w of wrt) grads.set(w, out[this.grads[w]].data as Float32Array);
    return { out, grads };
  }

  async release(): Promise<void> {
    await this.lease.release();
  }
}

/** Forward-only session with the named initializers lifted to inputs (fed from a ParamStore). */
export class ParamSession {
  private constructor(
    private readonly lease: SessionLease,
    private readonly params: readonly string[],
  ) {}

  static async create(
    forward: Graph,
    params: readonly string[],
    session?: SessionOptions,
  ): Promise<ParamSession> {
    const lease = await sessionCache.acquire(promoteInitializers(forward, [...params]), session);
    return new ParamSession(lease, params);
  }

  async run(params: ParamStore, feeds: Feeds): Promise<Feeds> {
    const all: Feeds = { ...feeds };
    for (const n of this.params) {
      const p = params.get(n);
      all[n] = { dtype: 'float32', dims: [...p.dims], data: p.data };
    }
    return this.lease.session.run(all);
  }

  async release(): Promise<void> {
    await this.lease.release();
  }
}
