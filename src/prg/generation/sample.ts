/**
 * Generation (paper §3.1, eq. 1–2): the forward (generative) ODE from noise to data.
 *
 * Convention (src/prg/interpolants, docs/engineering.md): t = 0 is data, t = 1 is noise. The flow
 * is trained so that dx/dt = v_θ(x, t) carries data at t = 0 to N(0, I) at t = 1; generation runs
 * the same ODE backwards in time, from x_1 ~ N(0, I) at t = 1 to x_0 at t = 0 — the reverse of the
 * reverse process PRG uses for features. Fixed-step solvers take K equal steps of size −1/K (one
 * unrolled ONNX graph); dopri5 adapts its step (numerically, on a velocity session).
 *
 * The noise comes from the project's seeded generator (src/prg/rng.ts), drawn for the whole
 * request before it is split into chunks, so the same seed gives the same images whatever the
 * batch size.
 */
import { GraphBuilder } from '../../engine/onnx/builder';
import { Graph } from '../../engine/onnx/types';
import { imageInputShape, namespaced, specializeBatch } from '../features';
import { FIXED_SOLVER_NAMES, FixedSolverName, SOLVER_NAMES, SolverName } from '../manifest';
import { Rng } from '../rng';
import { integrateGraph } from '../solvers';

/** What a caller asks of `PrgModelApi.sample`. */
export interface SampleOptions {
  /** Number of images (≥ 1). */
  n: number;
  /** Solver steps K (fixed-step solvers; dopri5's first step is 1/K). Default 20. */
  steps?: number;
  /** Default euler. */
  solver?: SolverName;
  /** Seed of the noise x_1 (default 0). */
  seed?: number;
  /**
   * Class index for a class-conditional velocity net (one with an int64 input `y`); its null
   * class (unconditional generation) by default. Checked against the manifest's labels.
   */
  classLabel?: number;
}

export const SAMPLE_DEFAULTS = { steps: 20, solver: 'euler' as SolverName, seed: 0 };

/** A velocity net is class-conditional when it takes an int64 class input `y` [N]. */
export function isClassConditional(velocity: Graph): boolean {
  return velocity.inputs.some((i) => i.name === 'y');
}

/** Resolved and checked sampling settings; throws naming the bad field. */
export interface SampleSetting {
  n: number;
  steps: number;
  solver: SolverName;
  seed: number;
}

export function resolveSample(o: SampleOptions): SampleSetting {
  const steps = o.steps ?? SAMPLE_DEFAULTS.steps;
  const solver = o.solver ?? SAMPLE_DEFAULTS.solver;
  const seed = o.seed ?? SAMPLE_DEFAULTS.seed;
  if (!Number.isInteger(o.n) || o.n < 1) throw new Error(`n=${o.n}: use an integer ≥ 1`);
  if (!Number.isInteger(steps) || steps < 1 || steps > 1000)
    throw new Error(`steps=${steps}: use an integer in [1, 1000]`);
  if (!(SOLVER_NAMES as readonly string[]).includes(solver))
    throw new Error(`solver ${String(solver)}: use ${SOLVER_NAMES.join(', ')}`);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`seed=${seed}: use an integer ≥ 0`);
  return { n: o.n, steps, solver, seed };
}

/** x_1 ~ N(0, I) for n images of `size` values each, from `seed`. */
export function sampleNoise(n: number, size: number, seed: number): Float32Array {
  return new Rng(`${seed}:generation-noise`).fillNormal(new Float32Array(n * size));
}

export function isFixed(s: SolverName): s is FixedSolverName {
  return (FIXED_SOLVER_NAMES as readonly string[]).includes(s);
}

/**
 * Generation graph for a fixed batch: input `x` (noise at t = 1) [batch, C, H, W] (and `y` int64
 * [batch] for a conditional net) → output `x0` at t = 0, by K unrolled steps of size −1/K.
 */
export function buildSampleGraph(
  velocity: Graph,
  o: { solver: FixedSolverName; steps: number; batch: number },
): Graph {
  const b = new GraphBuilder('prg_sample');
  const x = b.input('x', imageInputShape(velocity, o.batch));
  const conditional = isClassConditional(velocity);
  const y = conditional ? b.input('y', [o.batch], 'int64') : undefined;
  const vel = namespaced(specializeBatch(velocity, o.batch), 'velocity/');
  const f = (xv: typeof x, tv: typeof x) =>
    b.call(vel, y ? { x: xv, t: tv, y } : { x: xv, t: tv }).v;
  const r = integrateGraph(b, f, x, { solver: o.solver, steps: o.steps, t0: 1, t1: 0 });
  b.output(b.identity(r.x), 'x0');
  return b.build();
}
