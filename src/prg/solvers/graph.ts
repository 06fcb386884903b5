/**
 * Fixed-step ODE solvers unrolled into an ONNX graph, so the whole reverse process (paper §3.1:
 * image at t = 0 → x_{t*}) is one differentiable graph: the fine-tuning "direct" mode backpropagates
 * through it with the autodiff; the "adjoint" mode builds ONE step (`stepGraph`) and takes
 * step-wise VJPs over stored states.
 *
 * The velocity net takes t of shape [N], so every stage time is materialised as an [N] tensor.
 */
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { ButcherTableau, solverByName } from './tableau';

/** The velocity field as graph code: x [N, ...], t [N] → v with x's shape. */
export type GraphVelocity = (x: Value, t: Value) => Value;

/**
 * A float [N] zeros tensor for x [N, ...]: x sliced to its first element per sample, times 0.
 * (Expand would need a constant shape; the batch dimension is symbolic.) A non-finite x gives a
 * non-finite t, which is already a failed state.
 */
export function batchZeros(b: GraphBuilder, x: Value): Value {
  if (x.rank < 1) throw new Error('batchZeros: x needs a batch axis');
  if (x.rank === 1) return b.mul(x, 0);
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i + 1);
  const first = b.slice(
    x,
    axes.map(() => 0),
    axes.map(() => 1),
    axes,
  );
  return b.squeeze(b.mul(first, 0), axes);
}

/** t as an [N] tensor: a constant broadcast over the batch of `like`, or t + dt for an [N] t. */
export function timeVector(b: GraphBuilder, zeros: Value, t: number | Value, dt = 0): Value {
  if (typeof t === 'number') return b.add(zeros, t + dt);
  if (t.rank !== 1) throw new Error(`time must be [N], got [${t.shape.join(', ')}]`);
  return dt === 0 ? t : b.add(t, dt);
}

/** x + h·Σ coef_j·k_j as graph ops, skipping zero coefficients. */
function combineGraph(
  b: GraphBuilder,
  x: Value,
  h: number,
  coef: readonly number[],
  k: readonly Value[],
): Value {
  let acc: Value | undefined;
  coef.forEach((c, j) => {
    if (c === 0) return;
    const term = b.mul(k[j], h * c);
    acc = acc ? b.add(acc, term) : term;
  });
  return acc ? b.add(x, acc) : x;
}

export interface StepGraphOptions {
  /** Reuse an [N] zeros tensor (integrateGraph builds one for all steps). */
  zeros?: Value;
}

/**
 * ONE explicit Runge–Kutta step from (t, x) with size h: k_i = f(x + h Σ a_ij k_j, t + c_i h),
 * returns x + h Σ b_i k_i. `t` is a build-time number or an [N] tensor (e.g. a graph input, so
 * one step graph serves every step of the adjoint pass).
 */
export function stepGraph(
  b: GraphBuilder,
  f: GraphVelocity,
  x: Value,
  t: number | Value,
  h: number,
  solver: ButcherTableau | string,
  opts: StepGraphOptions = {},
): Value {
  const tab = typeof solver === 'object' ? solver : solverByName(solver);
  const zeros = typeof t === 'number' ? (opts.zeros ?? batchZeros(b, x)) : undefined;
  const k: Value[] = [];
  // FSAL's last stage only feeds the next step's k_1 and the error estimate: not needed here.
  const stages = tab.fsal ? tab.c.length - 1 : tab.c.length;
  for (let i = 0; i < stages; i++) {
    const xi = i === 0 ? x : combineGraph(b, x, h, tab.a[i], k);
    const ti = timeVector(b, zeros as Value, t, tab.c[i] * h);
    const v = f(xi, ti);
    if (v.shape.join() !== x.shape.join())
      throw new Error(`velocity returned [${v.shape.join(', ')}] for x [${x.shape.join(', ')}]`);
    k.push(v);
  }
  return combineGraph(b, x, h, tab.b.slice(0, stages), k);
}

export interface IntegrateGraphOptions {
  solver: ButcherTableau | string;
  /** K ≥ 1 equal steps. */
  steps: number;
  t0?: number;
  /** Default 1; the feature-extraction end point t*. */
  t1?: number;
  /** Also return the state after every step. */
  trajectory?: boolean;
}

export interface IntegrateGraphResult {
  /** The state at t1. */
  x: Value;
  /** Grid times t0 … t1 (K + 1). */
  ts: number[];
  /** States at `ts` (x0 first) when `trajectory` was set. */
  xs?: Value[];
}

/** Unroll K fixed steps of `solver` from t0 to t1 into the graph. */
export function integrateGraph(
  b: GraphBuilder,
  f: GraphVelocity,
  x0: Value,
  opts: IntegrateGraphOptions,
): IntegrateGraphResult {
  const tab = typeof opts.solver === 'object' ? opts.solver : solverByName(opts.solver);
  const { steps } = opts;
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`integrateGraph: steps must be an integer >= 1, got ${steps}`);
  const t0 = opts.t0 ?? 0;
  const t1 = opts.t1 ?? 1;
  const h = (t1 - t0) / steps;
  const zeros = batchZeros(b, x0);
  const ts = [t0];
  const xs = opts.trajectory ? [x0] : undefined;
  let x = x0;
  for (let s = 0; s < steps; s++) {
    x = stepGraph(b, f, x, t0 + s * h, h, tab, { zeros });
    ts.push(s === steps - 1 ? t1 : t0 + (s + 1) * h);
    xs?.push(x);
  }
  return { x, ts, xs };
}
