/**
 * ODE solvers over flat Float32Array/Float64Array states with an async velocity callback (ORT
 * inference, tests). Fixed-step for every tableau; adaptive step-size control for embedded pairs
 * (dopri5), inference only.
 *
 * Feature extraction (paper §3.1, "Diffusion Step Design"): integrate dx/dt = v_θ(x, t) from the
 * image at t = 0 to t* ∈ (0, 1] in K steps; x_{t*} is the feature.
 */
import { ButcherTableau, solverByName } from './tableau';

export type Vec = Float32Array | Float64Array;

/** The velocity of the whole batch at one time t (the caller broadcasts t to [N]). */
export type VelocityFn<T extends Vec> = (x: T, t: number) => Promise<T> | T;

function like<T extends Vec>(x: T): T {
  return new (x.constructor as new (n: number) => T)(x.length);
}

function checkVelocity<T extends Vec>(v: T, x: T, t: number): T {
  if (!v || v.length !== x.length)
    throw new Error(`velocity at t=${t} has ${v?.length} values, the state has ${x.length}`);
  return v;
}

/** out = x + h·Σ coef_j·k_j (zero coefficients skipped), accumulated in float64. */
function combine<T extends Vec>(x: T, h: number, coef: readonly number[], k: readonly T[]): T {
  const out = like(x);
  const terms: [number, T][] = [];
  coef.forEach((c, j) => {
    if (c !== 0) terms.push([h * c, k[j]]);
  });
  for (let i = 0; i < x.length; i++) {
    let s = x[i];
    for (const [w, kj] of terms) s += w * kj[i];
    out[i] = s;
  }
  return out;
}

export interface StepResult<T extends Vec> {
  /** The state at t + h. */
  x: T;
  /** Stage slopes k_1..k_s. With FSAL the last one is f(x, t + h). */
  k: T[];
  /** Local error estimate h·Σ e_i k_i (embedded pairs only). */
  err?: T;
}

/**
 * ONE explicit Runge–Kutta step of `tab` from (t, x) with size h. `k1` = f(x, t) when already
 * known (FSAL reuse).
 */
export async function rkStep<T extends Vec>(
  tab: ButcherTableau,
  f: VelocityFn<T>,
  x: T,
  t: number,
  h: number,
  k1?: T,
): Promise<StepResult<T>> {
  const k: T[] = [];
  for (let i = 0; i < tab.c.length; i++) {
    if (i === 0 && k1) {
      k.push(k1);
      continue;
    }
    const xi = i === 0 ? x : combine(x, h, tab.a[i], k);
    const ti = t + tab.c[i] * h;
    k.push(checkVelocity(await f(xi, ti), x, ti));
  }
  // With FSAL the last stage is evaluated at x' itself, so x' is that stage's input.
  const xNext = combine(x, h, tab.b, k);
  let err: T | undefined;
  if (tab.e) {
    err = like(x);
    const e = tab.e;
    for (let i = 0; i < x.length; i++) {
      let s = 0;
      for (let j = 0; j < k.length; j++) if (e[j] !== 0) s += e[j] * k[j][i];
      err[i] = h * s;
    }
  }
  return { x: xNext, k, err };
}

export interface SolveOptions {
  /** Tableau or name; default 'euler'. */
  solver?: ButcherTableau | string;
  t0?: number;
  /** End time (may be < t0 to integrate backwards, e.g. noise → image). Default 1. */
  t1?: number;
  /** Fixed-step methods: number of equal steps K (≥ 1, default 1). Ignored when adapting. */
  steps?: number;
  /**
   * Embedded pairs (dopri5) adapt the step by default; `false` takes `steps` fixed steps of the
   * higher-order solution instead (what the graph form does).
   */
  adaptive?: boolean;
  /** Adaptive methods (dopri5): absolute / relative tolerance (defaults 1e-5 / 1e-5). */
  atol?: number;
  rtol?: number;
  /** Adaptive: first step size (default: Hairer's starting-step heuristic). */
  firstStep?: number;
  /** Adaptive: give up after this many step attempts (default 10 000). */
  maxSteps?: number;
  /** Keep the state at every grid point / accepted step. */
  trajectory?: boolean;
  /** Called after each accepted step (progress, cancellation by throwing). */
  onStep?: (t: number, stepIndex: number) => void;
}

export interface SolveResult<T extends Vec> {
  x: T;
  /** Times of the kept states (t0 and t1 always; every step with `trajectory`). */
  ts: number[];
  /** States at `ts` when `trajectory` was set. */
  xs?: T[];
  /** Velocity evaluations. */
  nfe: number;
  /** Accepted and rejected steps. */
  accepted: number;
  rejected: number;
}

/**
 * Integrate dx/dt = f(x, t) from t0 to t1. Fixed-step methods take `steps` equal steps; embedded
 * pairs (dopri5) adapt the step to atol/rtol with one step size for the whole state (the batch
 * shares the step, as in torchdiffeq).
 */
export async function solveOde<T extends Vec>(
  f: VelocityFn<T>,
  x0: T,
  opts: SolveOptions = {},
): Promise<SolveResult<T>> {
  const tab = typeof opts.solver === 'object' ? opts.solver : solverByName(opts.solver ?? 'euler');
  const t0 = opts.t0 ?? 0;
  const t1 = opts.t1 ?? 1;
  if (!Number.isFinite(t0) || !Number.isFinite(t1))
    throw new Error(`solveOde: bad times ${t0}, ${t1}`);
  return tab.e && opts.adaptive !== false
    ? solveAdaptive(tab, f, x0, t0, t1, opts)
    : solveFixed(tab, f, x0, t0, t1, opts);
}

async function solveFixed<T extends Vec>(
  tab: ButcherTableau,
  f: VelocityFn<T>,
  x0: T,
  t0: number,
  t1: number,
  opts: SolveOptions,
): Promise<SolveResult<T>> {
  const steps = opts.steps ?? 1;
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`solveOde: steps must be an integer >= 1, got ${steps}`);
  const h = (t1 - t0) / steps;
  let x = x0;
  const ts = [t0];
  const xs = opts.trajectory ? [x0] : undefined;
  for (let s = 0; s < steps; s++) {
    // Grid times from the index (not by accumulating h) so the last one is exactly t1.
    const t = t0 + s * h;
    x = (await rkStep(tab, f, x, t, h)).x;
    const tn = s === steps - 1 ? t1 : t0 + (s + 1) * h;
    if (xs) {
      xs.push(x);
      ts.push(tn);
    }
    opts.onStep?.(tn, s);
  }
  if (!xs) ts.push(t1);
  return { x, ts, xs, nfe: steps * tab.c.length, accepted: steps, rejected: 0 };
}

/** RMS norm of err / (atol + rtol·max(|x|, |x'|)) (Hairer I, eq. II.4.11). */
function errorRatio(err: Vec, x: Vec, xn: Vec, atol: number, rtol: number): number {
  let s = 0;
  for (let i = 0; i < err.length; i++) {
    const sc = atol + rtol * Math.max(Math.abs(x[i]), Math.abs(xn[i]));
    s += (err[i] / sc) ** 2;
  }
  return Math.sqrt(s / Math.max(1, err.length));
}

function rmsScaled(v: Vec, x: Vec, atol: number, rtol: number): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += (v[i] / (atol + rtol * Math.abs(x[i]))) ** 2;
  return Math.sqrt(s / Math.max(1, v.length));
}

async function solveAdaptive<T extends Vec>(
  tab: ButcherTableau,
  f: VelocityFn<T>,
  x0: T,
  t0: number,
  t1: number,
  opts: SolveOptions,
): Promise<SolveResult<T>> {
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-5;
  if (!(atol > 0) || !(rtol >= 0)) throw new Error(`solveOde: need atol > 0, rtol >= 0`);
  const maxSteps = opts.maxSteps ?? 10_000;
  const dir = t1 >= t0 ? 1 : -1;
  const span = Math.abs(t1 - t0);
  const ts = [t0];
  const xs = opts.trajectory ? [x0] : undefined;
  if (span === 0) return { x: x0, ts: [t0, t1], xs, nfe: 0, accepted: 0, rejected: 0 };

  let nfe = 0;
  const fc: VelocityFn<T> = async (x, t) => {
    nfe++;
    return checkVelocity(await f(x, t), x, t);
  };
  let x = x0;
  let t = t0;
  let k1 = await fc(x, t);
  const q = (tab.errorOrder ?? tab.order - 1) + 1;

  let h: number;
  if (opts.firstStep !== undefined) {
    if (!(opts.firstStep > 0)) throw new Error(`solveOde: firstStep must be > 0`);
    h = opts.firstStep;
  } else {
    // Starting step (Hairer I, §II.4 "Starting Step Size"): one explicit Euler probe.
    const d0 = rmsScaled(x, x, atol, rtol);
    const d1 = rmsScaled(k1, x, atol, rtol);
    const h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : (0.01 * d0) / d1;
    const xp = combine(x, dir * h0, [1], [k1]);
    const fp = await fc(xp, t + dir * h0);
    const diff = like(x);
    for (let i = 0; i < x.length; i++) diff[i] = fp[i] - k1[i];
    const d2 = rmsScaled(diff, x, atol, rtol) / h0;
    const h1 =
      Math.max(d1, d2) <= 1e-15 ? Math.max(1e-6, h0 * 1e-3) : (0.01 / Math.max(d1, d2)) ** (1 / q);
    h = Math.min(100 * h0, h1);
  }
  h = Math.min(h, span);

  let accepted = 0;
  let rejected = 0;
  while (dir * (t1 - t) > 0) {
    if (accepted + rejected >= maxSteps)
      throw new Error(`solveOde(${tab.name}): ${maxSteps} steps did not reach t=${t1} (at t=${t})`);
    const remaining = Math.abs(t1 - t);
    // Land exactly on t1; avoid leaving a sliver step behind.
    const last = h >= remaining * (1 - 1e-12);
    const hs = last ? remaining : h;
    const step = await rkStep(tab, fc, x, t, dir * hs, k1);
    const ratio = errorRatio(step.err!, x, step.x, atol, rtol);
    if (!Number.isFinite(ratio))
      throw new Error(`solveOde(${tab.name}): non-finite error estimate at t=${t} (h=${hs})`);
    // Step-size controller (Hairer I, eq. II.4.13): safety 0.9, factor clamped to [0.2, 10].
    const factor = ratio === 0 ? 10 : Math.min(10, Math.max(0.2, 0.9 * ratio ** (-1 / q)));
    if (ratio <= 1) {
      x = step.x;
      t = last ? t1 : t + dir * hs;
      k1 = tab.fsal ? step.k[step.k.length - 1] : await fc(x, t);
      accepted++;
      if (xs) {
        xs.push(x);
        ts.push(t);
      }
      opts.onStep?.(t, accepted - 1);
      h = hs * factor;
    } else {
      rejected++;
      h = hs * Math.min(1, factor);
    }
    if (!(h > 0) || h < span * 1e-14)
      throw new Error(`solveOde(${tab.name}): step size underflow at t=${t}`);
  }
  if (!xs) ts.push(t1);
  return { x, ts, xs, nfe, accepted, rejected };
}
