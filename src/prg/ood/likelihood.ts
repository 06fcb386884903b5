/**
 * Log-likelihood of images under a flow model by the instantaneous change of variables
 * (paper §4.3.1, eq. 10) with Hutchinson's trace estimator (eq. 11).
 *
 * Direction (docs/engineering.md): t = 0 is data, t = 1 is noise, dx/dt = v(x, t). Along a
 * trajectory the continuity equation ∂p/∂t = −∇·(p v) gives
 *     d/dt log p_t(x(t)) = −∇·v(x(t), t),
 * so integrating from the image x(0) to x(1):
 *     log p_0(x(0)) = log N(x(1); 0, I) + ∫₀¹ ∇·v(x(t), t) dt.
 * The model's density of an image is the push-forward of the standard Gaussian prior at t = 1
 * through the reverse of this flow, which is exactly this quantity.
 *
 * The divergence is estimated per image with fixed probes ε (Rademacher or Gaussian, E[εεᵀ] = I)
 * drawn once per image and reused at every solver stage (FFJORD's choice, so the estimate is one
 * smooth ODE per probe):  ∇·v ≈ (1/P) Σ_p ε_pᵀ (∂v/∂x) ε_p,  with (∂v/∂x)ᵀε from the engine's vjp
 * with respect to the input x and ε as the cotangent (εᵀJε = (Jᵀε)·ε).
 * `probe: 'exact'` uses the D basis vectors instead (Σ_i e_iᵀ J e_i = tr J): exact, D× the cost,
 * meant for tests and small images.
 *
 * One ONNX graph computes one explicit Runge–Kutta step of the augmented state (x, Δ) with
 * dΔ/dt = ∇·v, for M = P·N rows (image n, probe p at row p·N + n; the P copies of an image carry
 * identical x). The driver runs it K times with a fixed step h = 1/K.
 *
 * Units (docs/ood.md): the model sees z = pixel/127.5 − 1. With 8-bit pixels k and uniform
 * dequantisation y = k + u, u ~ U[−½, ½)^D, the discrete log-probability is bounded by
 *     log P(k) ≥ E_u[log p_y(k + u)] = E_u[log p_z(z)] − D·log 127.5,
 * because z = y/127.5 − 1 has Jacobian 127.5^(−D). The reported NLL (nats) is
 * −log p_z(z) + D·log 127.5 for one dequantisation draw, and bits/dim = NLL / (D·ln 2).
 */
import { vjp } from '../../engine/autodiff';
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { Graph, numel, tensor } from '../../engine/onnx/types';
import { GraphSession, SessionOptions } from '../../engine/runtime/session';
import { Rng } from '../rng';
import { ButcherTableau, EULER, MIDPOINT, RK4 } from '../solvers';

export type LikelihoodSolver = 'euler' | 'midpoint' | 'rk4';
export type ProbeKind = 'rademacher' | 'gaussian' | 'exact';

/** The project's fixed-step tableaux (src/prg/solvers, paper App. C.2); dopri5 is adaptive. */
export const TABLEAUX: Record<LikelihoodSolver, ButcherTableau> = {
  euler: EULER,
  midpoint: MIDPOINT,
  rk4: RK4,
};

/** The cost-accuracy trade-off used unless the caller overrides it (see docs/ood.md). */
export const LIKELIHOOD_DEFAULTS = {
  solver: 'midpoint' as LikelihoodSolver,
  steps: 6,
  probes: 1,
  probe: 'rademacher' as ProbeKind,
  batchSize: 32,
  seed: 0,
  dequantize: true,
};

/** log(127.5): the per-dimension log-Jacobian of pixel → [−1, 1] scaling. */
export const LOG_SCALE = Math.log(127.5);

/**
 * The augmented step graph. Inputs: `x` [M, C, H, W], `t` [M] (stage times are t + c_i·h),
 * `h` [1], `eps` [M, C, H, W]. Outputs: `x_next` [M, C, H, W] and `ddiv` [M] = h·Σ_i b_i·εᵀJ_iε,
 * the step's increment of ∫∇·v dt for that row's probe.
 */
export function buildAugmentedStep(velocity: Graph, solver: LikelihoodSolver): Graph {
  const tab = TABLEAUX[solver];
  if (!tab) throw new Error(`likelihood: unknown solver ${solver} (have ${Object.keys(TABLEAUX)})`);
  const xIn = velocity.inputs.find((i) => i.name === 'x');
  if (!xIn || !velocity.inputs.some((i) => i.name === 't') || !velocity.values.has('v'))
    throw new Error(`likelihood: the velocity graph needs inputs x, t and output v`);
  // grad_x = (∂v/∂x)ᵀ · grad_v; fed grad_v = ε this is Jᵀε.
  const vd = vjp(velocity, { of: ['v'], wrt: ['x'] }).graph;
  // Rows keep the velocity net's batch dimension (symbolic 'N' for the nets in src/prg/nets).
  const shape = [...xIn.shape];
  const b = new GraphBuilder(`likelihood_${solver}`);
  const x = b.input('x', shape);
  const t = b.input('t', [shape[0]]);
  const h = b.input('h', [1]);
  const eps = b.input('eps', shape);
  const ks: Value[] = [];
  let xNext: Value = x;
  let ddiv: Value | undefined;
  tab.b.forEach((bi, i) => {
    let xi: Value = x;
    tab.a[i].forEach((aij, j) => {
      if (aij !== 0) xi = b.add(xi, b.mul(b.mul(h, aij), ks[j]));
    });
    const ti = tab.c[i] === 0 ? t : b.add(t, b.mul(h, tab.c[i]));
    const out = b.call(vd, { x: xi, t: ti, grad_v: eps }, { prefix: `stage${i}` });
    ks.push(out.v);
    if (bi === 0) return;
    const q = b.reduceSum(b.mul(out.grad_x, eps), [1, 2, 3], false);
    const hb = b.mul(h, bi);
    xNext = b.add(xNext, b.mul(hb, out.v));
    const inc = b.mul(hb, q);
    ddiv = ddiv ? b.add(ddiv, inc) : inc;
  });
  b.output(xNext, 'x_next');
  b.output(ddiv!, 'ddiv');
  return b.build();
}

export interface LikelihoodOptions {
  solver?: LikelihoodSolver;
  /** K fixed steps over t ∈ [0, 1]. */
  steps?: number;
  /** Hutchinson probes per image (ignored for 'exact'). */
  probes?: number;
  probe?: ProbeKind;
  /** Images per graph run (rows = images × probes). */
  batchSize?: number;
  /** Seeds the probes and the dequantisation noise; the same seed gives the same numbers. */
  seed?: number;
  /** Add U[−½, ½) pixel noise (÷127.5) before integrating; see the file comment. */
  dequantize?: boolean;
  session?: SessionOptions;
}

export interface LikelihoodResult {
  /** log p_z(z) in the model's [−1, 1] space (nats, continuous density), per image. */
  logpModel: Float64Array;
  /** ∫₀¹ ∇·v dt per image (the change-of-variables term). */
  divIntegral: Float64Array;
  /** log N(x(1); 0, I) per image. */
  logPrior: Float64Array;
  /** Negative log-likelihood of the 8-bit image in nats: −logpModel + D·log 127.5. */
  nats: Float64Array;
  /** nats / (D·ln 2). */
  bitsPerDim: Float64Array;
  dims: number;
}

/** Seeded draws for probes and dequantisation: the project RNG (src/prg/rng.ts) plus ±1. */
export class ProbeRng extends Rng {
  rademacher(): number {
    return this.u32() & 1 ? 1 : -1;
  }
}

/**
 * A reusable likelihood evaluator: builds the augmented step graph once and keeps its session.
 * `release()` frees the session.
 */
export class LikelihoodEstimator {
  private constructor(
    private readonly session: GraphSession,
    private readonly imageShape: number[],
    readonly options: Required<Omit<LikelihoodOptions, 'session'>>,
  ) {}

  static async create(velocity: Graph, opts: LikelihoodOptions = {}): Promise<LikelihoodEstimator> {
    const o = { ...LIKELIHOOD_DEFAULTS, ...stripUndefined(opts) };
    delete (o as LikelihoodOptions).session;
    if (!Number.isInteger(o.steps) || o.steps < 1)
      throw new Error(`likelihood: steps ${o.steps} must be an integer >= 1`);
    if (!Number.isInteger(o.probes) || o.probes < 1)
      throw new Error(`likelihood: probes ${o.probes} must be an integer >= 1`);
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
      throw new Error(`likelihood: batchSize ${o.batchSize} must be an integer >= 1`);
    if (!['rademacher', 'gaussian', 'exact'].includes(o.probe))
      throw new Error(`likelihood: probe ${o.probe} (have rademacher, gaussian, exact)`);
    const xIn = velocity.inputs.find((i) => i.name === 'x');
    const img = xIn?.shape.slice(1);
    if (!img || img.length !== 3 || !img.every((d) => typeof d === 'number'))
      throw new Error(`likelihood: velocity input x must be [N, C, H, W] with static C, H, W`);
    const g = buildAugmentedStep(velocity, o.solver);
    const session = await GraphSession.create(g, opts.session);
    return new LikelihoodEstimator(session, img as number[], o);
  }

  get dims(): number {
    return numel(this.imageShape);
  }

  /** Log-likelihood of `n` images (NCHW float32 in [−1, 1]). */
  async evaluate(images: Float32Array, n: number): Promise<LikelihoodResult> {
    const D = this.dims;
    if (images.length !== n * D)
      throw new Error(`likelihood: got ${images.length} values for ${n} images of ${D}`);
    const res: LikelihoodResult = {
      logpModel: new Float64Array(n),
      divIntegral: new Float64Array(n),
      logPrior: new Float64Array(n),
      nats: new Float64Array(n),
      bitsPerDim: new Float64Array(n),
      dims: D,
    };
    // Exact mode has D rows per image: fewer images per run keep a run near 2048 rows.
    const per =
      this.options.probe === 'exact'
        ? Math.max(1, Math.min(this.options.batchSize, Math.floor(2048 / D)))
        : this.options.batchSize;
    for (let s = 0; s < n; s += per) {
      const m = Math.min(per, n - s);
      await this.evaluateBatch(images.subarray(s * D, (s + m) * D), m, res, s);
    }
    return res;
  }

  private async evaluateBatch(
    images: Float32Array,
    n: number,
    res: LikelihoodResult,
    offset: number,
  ): Promise<void> {
    const D = this.dims;
    const o = this.options;
    const exact = o.probe === 'exact';
    const P = exact ? D : o.probes;
    const M = P * n;
    // Each image's RNG stream is seeded by (seed, its pixel values), so its dequantisation noise
    // and probes do not depend on the batch it lands in: the same image always gets the same
    // estimate (a served score, and its flag, are reproducible). Rows p·n + i hold image i with
    // probe p; the probes stay fixed for the whole trajectory.
    let x: Float32Array = new Float32Array(M * D);
    const eps = new Float32Array(M * D);
    for (let i = 0; i < n; i++) {
      const z = images.subarray(i * D, (i + 1) * D);
      const rng = new ProbeRng(imageSeed(o.seed, z));
      for (let p = 0; p < P; p++) x.set(z, (p * n + i) * D);
      if (o.dequantize)
        for (let d = 0; d < D; d++) {
          const u = (rng.uniform() - 0.5) / 127.5;
          for (let p = 0; p < P; p++) x[(p * n + i) * D + d] += u;
        }
      for (let p = 0; p < P; p++) {
        const row = (p * n + i) * D;
        if (exact) eps[row + p] = 1;
        else
          for (let d = 0; d < D; d++)
            eps[row + d] = o.probe === 'gaussian' ? rng.normal() : rng.rademacher();
      }
    }
    const dims = [M, ...this.imageShape];
    const epsT = tensor('float32', dims);
    epsT.data = eps;
    const hT = tensor('float32', [1], [1 / o.steps]);
    const div = new Float64Array(M);
    for (let k = 0; k < o.steps; k++) {
      const tT = tensor('float32', [M]);
      (tT.data as Float32Array).fill(k / o.steps);
      const out = await this.session.run(
        { x: { dtype: 'float32', dims, data: x }, t: tT, h: hT, eps: epsT },
        ['x_next', 'ddiv'],
      );
      x = out.x_next.data as Float32Array;
      const dd = out.ddiv.data as Float32Array;
      for (let r = 0; r < M; r++) div[r] += dd[r];
    }
    const halfLog2pi = 0.5 * Math.log(2 * Math.PI);
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let p = 0; p < P; p++) d += div[p * n + i];
      // Exact: Σ_i e_iᵀJe_i = tr J. Hutchinson: the mean over probes estimates tr J.
      if (!exact) d /= P;
      let sq = 0;
      for (let j = 0; j < D; j++) sq += x[i * D + j] ** 2; // probe 0's copy of image i
      const prior = -D * halfLog2pi - 0.5 * sq;
      const logp = prior + d;
      const nats = -logp + D * LOG_SCALE;
      res.divIntegral[offset + i] = d;
      res.logPrior[offset + i] = prior;
      res.logpModel[offset + i] = logp;
      res.nats[offset + i] = nats;
      res.bitsPerDim[offset + i] = nats / (D * Math.LN2);
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** A per-image seed: the run seed and an FNV-1a hash of the image's float32 bits. */
export function imageSeed(seed: number, image: Float32Array): string {
  const words = new Uint32Array(image.buffer, image.byteOffset, image.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i], 0x01000193);
  return `ood-likelihood:${seed}:${h >>> 0}`;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** One-shot helper: build, evaluate, release. */
export async function logLikelihood(
  velocity: Graph,
  images: Float32Array,
  n: number,
  opts: LikelihoodOptions = {},
): Promise<LikelihoodResult> {
  const est = await LikelihoodEstimator.create(velocity, opts);
  try {
    return await est.evaluate(images, n);
  } finally {
    await est.release();
  }
}
