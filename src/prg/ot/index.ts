/**
 * Exact minibatch optimal transport for OT-CFM (paper §3.1, Tong et al. [58]): pair a batch of
 * data x0 with a batch of noise x1 by the exact W2 plan, which for equal sizes and uniform weights
 * is a permutation (see lap.ts).
 */
import { Vectors, sqEuclideanCost } from './cost';
import { Assignment, solveAssignment } from './lap';

export { sqEuclideanCost, solveAssignment };
export type { Vectors, Assignment };

/**
 * The exact OT permutation between a [n, d] and b [n, d] under squared Euclidean cost:
 * row i of `a` is paired with row `rowToCol[i]` of `b`.
 */
export function otAssignment(a: Vectors, b: Vectors, n: number, d: number): Assignment {
  return solveAssignment(sqEuclideanCost(a, b, n, n, d), n);
}

/** Rows of x [n, d] reordered: out[i] = x[perm[i]]. Same array type as x. */
export function permuteRows<T extends Vectors>(x: T, perm: ArrayLike<number>, d: number): T {
  const out = new (x.constructor as new (n: number) => T)(x.length);
  for (let i = 0; i < perm.length; i++) out.set(x.subarray(perm[i] * d, perm[i] * d + d), i * d);
  return out;
}

/** x1 reordered so that (x0[i], out[i]) are the pairs of the exact OT plan. */
export function otPairNoise<T extends Vectors>(x0: Vectors, x1: T, n: number, d: number): T {
  return permuteRows(x1, otAssignment(x0, x1, n, d).rowToCol, d);
}
