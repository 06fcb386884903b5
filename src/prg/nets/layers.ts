/**
 * Parameter creation and the small layers the velocity nets and heads are made of.
 *
 * Every trainable tensor goes through a `Params` store, which gives it a stable dotted name
 * (`down.0.res.conv1.weight`), a PyTorch layout (conv [out, in, kh, kw], linear [out, in]) and a
 * PyTorch-default initial value drawn from the seeded Rng (src/prg/rng.ts), and records its name.
 * The builder also stores fixed constants (frequency vectors, shapes, scalars) as initializers;
 * the recorded names are what separates parameters from those, so training knows what to lift
 * into graph inputs.
 */
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { Tensor, numel, tensor } from '../../engine/onnx/types';
import { Rng } from '../rng';

/** How a net's parameters get their first values. */
export interface ParamInit {
  /**
   * Placeholders: parameters get their shapes but empty data, to be filled from a checkpoint
   * (src/prg/import loads every one, and checks it did). Saves drawing, then discarding, a
   * random copy of every weight — 2.7 GB for SiT-XL.
   */
  placeholders?: boolean;
}

export class Params {
  readonly names: string[] = [];
  private readonly rng: Rng;
  count = 0;

  constructor(
    readonly b: GraphBuilder,
    seed: number,
    private readonly init: ParamInit = {},
  ) {
    this.rng = new Rng(seed);
  }

  private placeholder(name: string, dims: number[]): Value | undefined {
    if (!this.init.placeholders) return undefined;
    return this.add(name, { dtype: 'float32', dims, data: new Float32Array(0) });
  }

  add(name: string, t: Tensor): Value {
    this.names.push(name);
    this.count += numel(t.dims);
    return this.b.param(name, t);
  }

  /** U(-bound, bound) */
  uniform(name: string, dims: number[], bound: number): Value {
    const ph = this.placeholder(name, dims);
    if (ph) return ph;
    const n = numel(dims);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = (2 * this.rng.uniform() - 1) * bound;
    return this.add(name, { dtype: 'float32', dims, data: v });
  }

  fill(name: string, dims: number[], value: number): Value {
    const ph = this.placeholder(name, dims);
    if (ph) return ph;
    return this.add(name, tensor('float32', dims, new Array<number>(numel(dims)).fill(value)));
  }

  /** An explicit initial value (e.g. a learned positional embedding started at sin-cos). */
  values(name: string, dims: number[], values: ArrayLike<number>): Value {
    const ph = this.placeholder(name, dims);
    if (ph) return ph;
    return this.add(name, tensor('float32', dims, values));
  }
}

export interface LinearParams {
  w: Value;
  b?: Value;
}

/**
 * nn.Linear(in, out): weight [out, in]. PyTorch's default, kaiming_uniform(a=√5), is
 * U(±1/√fan_in) for the weight and for the bias. `zero` gives all-zero weight and bias.
 */
export function linearParams(
  p: Params,
  name: string,
  inF: number,
  outF: number,
  o: { bias?: boolean; zero?: boolean } = {},
): LinearParams {
  const bound = o.zero ? 0 : 1 / Math.sqrt(inF);
  const w = p.uniform(`${name}.weight`, [outF, inF], bound);
  const b = o.bias === false ? undefined : p.uniform(`${name}.bias`, [outF], bound);
  return { w, b };
}

export function applyLinear(b: GraphBuilder, x: Value, l: LinearParams): Value {
  return b.linear(x, l.w, l.b);
}

/** nn.Conv2d(in, out, k, stride, padding): weight [out, in, k, k], fan_in = in·k·k. */
export function conv2d(
  p: Params,
  name: string,
  x: Value,
  inC: number,
  outC: number,
  k: number,
  o: { stride?: number; pad?: number; zero?: boolean } = {},
): Value {
  const bound = o.zero ? 0 : 1 / Math.sqrt(inC * k * k);
  const w = p.uniform(`${name}.weight`, [outC, inC, k, k], bound);
  const bias = p.uniform(`${name}.bias`, [outC], bound);
  const pad = o.pad ?? 0;
  const s = o.stride ?? 1;
  return p.b.conv(x, w, bias, { strides: [s, s], pads: [pad, pad, pad, pad] });
}

/** nn.GroupNorm(groups, c): weight 1, bias 0. */
export function groupNorm(p: Params, name: string, x: Value, groups: number): Value {
  const c = x.shape[1] as number;
  const g = p.fill(`${name}.weight`, [c], 1);
  const beta = p.fill(`${name}.bias`, [c], 0);
  return p.b.groupNorm(x, groups, g, beta);
}

/** nn.LayerNorm(d) over the last axis; `affine: false` as in DiT's blocks. */
export function layerNorm(p: Params, name: string, x: Value, affine: boolean, eps = 1e-6): Value {
  if (!affine) return p.b.layerNorm(x, undefined, undefined, eps);
  const d = x.shape[x.rank - 1] as number;
  const g = p.fill(`${name}.weight`, [d], 1);
  const beta = p.fill(`${name}.bias`, [d], 0);
  return p.b.layerNorm(x, g, beta, eps);
}

/**
 * Sinusoidal embedding of t [N] → [N, dim] as in improved-diffusion / DiT:
 * [cos(s·t·f_k), sin(s·t·f_k)], f_k = maxPeriod^(-k/half), k < half. `scale` s stretches
 * t ∈ [0, 1] over the frequency range (1000 reproduces DDPM's integer-timestep embedding).
 */
export function timestepEmbedding(
  b: GraphBuilder,
  t: Value,
  dim: number,
  scale: number,
  maxPeriod = 10000,
): Value {
  if (dim % 2) throw new Error(`timestep embedding: dim must be even, got ${dim}`);
  const half = dim / 2;
  const freqs = Array.from(
    { length: half },
    (_, k) => scale * Math.exp((-Math.log(maxPeriod) * k) / half),
  );
  const f = b.const(tensor('float32', [1, half], freqs), 'freqs');
  const args = b.mul(b.unsqueeze(t, [1]), f);
  return b.concat([b.cos(args), b.sin(args)], 1);
}

/** GELU, tanh approximation (DiT) or exact erf form, from primitive ops. */
export function gelu(b: GraphBuilder, x: Value, kind: 'tanh' | 'erf'): Value {
  if (kind === 'erf') return b.mul(b.mul(x, 0.5), b.add(b.erf(b.mul(x, Math.SQRT1_2)), 1));
  const inner = b.mul(b.add(x, b.mul(b.mul(b.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return b.mul(b.mul(x, 0.5), b.add(b.tanh(inner), 1));
}

/**
 * Multi-head attention core: q, k, v [N, heads, T, d] → [N, heads, T, d],
 * softmax(q·kᵀ/√d)·v.
 */
export function attention(b: GraphBuilder, q: Value, k: Value, v: Value, d: number): Value {
  const scores = b.mul(b.matmul(q, b.transpose(k, [0, 1, 3, 2])), 1 / Math.sqrt(d));
  return b.matmul(b.softmax(scores, -1), v);
}

export function assertInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v <= 0)
    throw new Error(`${what}: expected a positive integer, got ${v}`);
  return v;
}
