/**
 * Finite-difference check of a gradient graph, run in ONNX Runtime (used by the autodiff specs;
 * exported so other modules can check their own graphs the same way).
 *
 * For each wrt value w and a random direction v, it compares the analytic directional derivative
 * Σ grad_w·v against the central difference Σ u·(f(w + εv) − f(w − εv)) / 2ε, where u is the
 * random output cotangent fed to the gradient graph. Sums are in float64; the forward pass runs
 * in float32. Perturbing one wrt value at a time localises a wrong rule to its input.
 */
import { Graph, Tensor, tensor } from '../onnx/types';
import { Feeds, GraphSession } from '../runtime/session';
import { vjp } from './vjp';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

export function randn(r: () => number, dims: number[]): Tensor {
  const t = tensor('float32', dims);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = normal(r);
  return t;
}

export interface FdOptions {
  of: string[];
  wrt: string[];
  /** Values for every graph input of the forward graph. */
  feeds: Feeds;
  seed?: 'ones' | 'input';
  /** Central-difference step (default 1e-2). */
  eps?: number;
  rng?: () => number;
}

export interface FdResult {
  wrt: string;
  analytic: number;
  numeric: number;
  /** Σ |grad·v| over elements: the size of the terms the two sums add up. */
  scale: number;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Runs forward and gradient graphs; the caller decides on the tolerance. */
export async function fdCheck(forward: Graph, o: FdOptions): Promise<FdResult[]> {
  const r = o.rng ?? rng(1234);
  const eps = o.eps ?? 1e-2;
  const { graph, seeds, grads } = vjp(forward, { of: o.of, wrt: o.wrt, seed: o.seed });
  const dims = (n: string) => {
    const v = forward.values.get(n);
    const f = o.feeds[n];
    if (f) return f.dims;
    const init = forward.initializers.get(n);
    if (init) return init.dims;
    throw new Error(`fdCheck: no value for ${n} (${v?.shape})`);
  };
  const fwd = await GraphSession.create(forward, { threads: 1 });
  const bwd = await GraphSession.create(graph, { threads: 1 });
  try {
    const base = await fwd.run(o.feeds, o.of);
    const cot: Feeds = {};
    for (const [out, input] of Object.entries(seeds)) cot[input] = randn(r, base[out].dims);
    // Gradients w.r.t. initializers: feed nothing extra, they are baked into both graphs.
    const res = await bwd.run({ ...o.feeds, ...cot });
    const results: FdResult[] = [];
    for (const w of o.wrt) {
      const x0 = (o.feeds[w] ?? forward.initializers.get(w)) as Tensor;
      const v = randn(r, dims(w)).data as Float32Array;
      const g = res[grads[w]].data as Float32Array;
      if (g.length !== v.length) throw new Error(`fdCheck: grad ${w} has ${g.length} elements`);
      const shifted = async (sign: number) => {
        const xt = tensor('float32', x0.dims);
        const d = xt.data as Float32Array;
        const src = x0.data as Float32Array;
        for (let i = 0; i < d.length; i++) d[i] = src[i] + sign * eps * v[i];
        if (o.feeds[w]) return fwd.run({ ...o.feeds, [w]: xt }, o.of);
        const g2: Graph = { ...forward, initializers: new Map(forward.initializers).set(w, xt) };
        const s = await GraphSession.create(g2, { threads: 1 });
        try {
          return await s.run(o.feeds, o.of);
        } finally {
          await s.release();
        }
      };
      const plus = await shifted(1);
      const minus = await shifted(-1);
      let numeric = 0;
      for (const out of o.of) {
        const p = plus[out].data as Float32Array;
        const m = minus[out].data as Float32Array;
        const u = seeds[out] ? (cot[seeds[out]].data as Float32Array) : new Float32Array([1]);
        for (let i = 0; i < p.length; i++) numeric += (u[i] * (p[i] - m[i])) / (2 * eps);
      }
      let scale = 0;
      for (let i = 0; i < g.length; i++) scale += Math.abs(g[i] * v[i]);
      results.push({ wrt: w, analytic: dot(g, v), numeric, scale });
    }
    return results;
  } finally {
    await fwd.release();
    await bwd.release();
  }
}
