/**
 * Squared Euclidean cost matrices for minibatch optimal transport (OT-CFM, paper §3.1 after
 * Tong et al. [58]): C[i, j] = ‖a_i − b_j‖² = ‖a_i‖² + ‖b_j‖² − 2·a_i·b_j.
 *
 * The dot products are computed in row blocks so a block of `a` rows stays in cache while every
 * `b` row streams past it once; accumulation is in float64, so the expansion loses little
 * precision relative to the direct difference.
 */

export type Vectors = Float32Array | Float64Array;

function rowNorms(x: Vectors, n: number, d: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = i * d;
    for (let k = 0; k < d; k++) s += x[o + k] * x[o + k];
    out[i] = s;
  }
  return out;
}

/** Rows of `a` that share one sweep over `b` (4 rows × 784 float32 ≈ 12 KiB: fits L1). */
const BLOCK = 4;

/**
 * C [n, m] row-major, C[i·m + j] = ‖a_i − b_j‖², for a [n, d] and b [m, d] row-major.
 * Entries are clamped at 0: the expansion can go slightly negative for (near-)equal vectors.
 */
export function sqEuclideanCost(
  a: Vectors,
  b: Vectors,
  n: number,
  m: number,
  d: number,
): Float64Array {
  if (a.length !== n * d)
    throw new Error(`sqEuclideanCost: a has ${a.length} values, want ${n}×${d}`);
  if (b.length !== m * d)
    throw new Error(`sqEuclideanCost: b has ${b.length} values, want ${m}×${d}`);
  const na = rowNorms(a, n, d);
  const nb = rowNorms(b, m, d);
  const c = new Float64Array(n * m);
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(n, i0 + BLOCK);
    if (i1 - i0 === BLOCK) {
      const o0 = i0 * d;
      const o1 = o0 + d;
      const o2 = o1 + d;
      const o3 = o2 + d;
      for (let j = 0; j < m; j++) {
        const ob = j * d;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let k = 0; k < d; k++) {
          const bk = b[ob + k];
          s0 += a[o0 + k] * bk;
          s1 += a[o1 + k] * bk;
          s2 += a[o2 + k] * bk;
          s3 += a[o3 + k] * bk;
        }
        c[i0 * m + j] = Math.max(0, na[i0] + nb[j] - 2 * s0);
        c[(i0 + 1) * m + j] = Math.max(0, na[i0 + 1] + nb[j] - 2 * s1);
        c[(i0 + 2) * m + j] = Math.max(0, na[i0 + 2] + nb[j] - 2 * s2);
        c[(i0 + 3) * m + j] = Math.max(0, na[i0 + 3] + nb[j] - 2 * s3);
      }
    } else {
      for (let i = i0; i < i1; i++) {
        const oa = i * d;
        for (let j = 0; j < m; j++) {
          const ob = j * d;
          let s = 0;
          for (let k = 0; k < d; k++) s += a[oa + k] * b[ob + k];
          c[i * m + j] = Math.max(0, na[i] + nb[j] - 2 * s);
        }
      }
    }
  }
  return c;
}
