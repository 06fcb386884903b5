/**
 * Explicit Runge–Kutta methods as Butcher tableaux (Hairer, Nørsett & Wanner, Solving ODEs I,
 * §II.1 and table II.5.2 for Dormand–Prince). The solvers the paper compares for the reverse
 * process (appendix C.2): Euler, Midpoint, RK4, Dopri5.
 *
 * A step from (t, x) with size h:  k_i = f(x + h Σ_j a_ij k_j, t + c_i h),  x' = x + h Σ_i b_i k_i.
 * An embedded pair also gives err = h Σ_i e_i k_i with e = b − b̂ (b̂ the lower-order weights).
 */
import { SolverName } from '../manifest';

export interface ButcherTableau {
  readonly name: SolverName;
  /** Global order of the solution x'. */
  readonly order: number;
  readonly c: readonly number[];
  /** Strictly lower-triangular: a[i] has i entries. */
  readonly a: readonly (readonly number[])[];
  readonly b: readonly number[];
  /** b − b̂ of the embedded lower-order solution (adaptive methods only). */
  readonly e?: readonly number[];
  /** Order of the embedded solution, which sets the step-size controller's exponent. */
  readonly errorOrder?: number;
  /** First-same-as-last: the last stage is f(x', t + h), reusable as the next step's k_1. */
  readonly fsal?: boolean;
}

export const EULER: ButcherTableau = { name: 'euler', order: 1, c: [0], a: [[]], b: [1] };

/** Explicit midpoint: one Euler half-step, then the full step with the midpoint slope. */
export const MIDPOINT: ButcherTableau = {
  name: 'midpoint',
  order: 2,
  c: [0, 1 / 2],
  a: [[], [1 / 2]],
  b: [0, 1],
};

/** The classic fourth-order Runge–Kutta method. */
export const RK4: ButcherTableau = {
  name: 'rk4',
  order: 4,
  c: [0, 1 / 2, 1 / 2, 1],
  a: [[], [1 / 2], [0, 1 / 2], [0, 0, 1]],
  b: [1 / 6, 1 / 3, 1 / 3, 1 / 6],
};

const DOPRI5_B = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0];
const DOPRI5_BHAT = [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40];

/** Dormand–Prince 5(4): fifth-order solution, fourth-order embedded error estimate, FSAL. */
export const DOPRI5: ButcherTableau = {
  name: 'dopri5',
  order: 5,
  c: [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1],
  a: [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    DOPRI5_B.slice(0, 6),
  ],
  b: DOPRI5_B,
  e: DOPRI5_B.map((v, i) => v - DOPRI5_BHAT[i]),
  errorOrder: 4,
  fsal: true,
};

/** Every solver by name (manifest `solver.name`, CLI `--solver`). */
export const SOLVERS: Readonly<Record<SolverName, ButcherTableau>> = {
  euler: EULER,
  midpoint: MIDPOINT,
  rk4: RK4,
  dopri5: DOPRI5,
};

export function solverByName(name: string): ButcherTableau {
  const tab = (SOLVERS as Record<string, ButcherTableau | undefined>)[name];
  if (!tab) throw new Error(`unknown solver "${name}" (use ${Object.keys(SOLVERS).join(', ')})`);
  return tab;
}

/** Function evaluations per step (FSAL methods reuse one after the first step). */
export function stagesPerStep(tab: ButcherTableau): number {
  return tab.fsal ? tab.b.length - 1 : tab.b.length;
}
