/**
 * Small dense float64 linear algebra for the OOD statistics (row-major n×n Float64Array).
 * Sizes are at most the feature width (784 for 28×28 images), where O(n³) in plain loops takes
 * well under a second.
 */

/** Lower-triangular L with L·Lᵀ = A (A symmetric positive definite). */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= l[j * n + k] ** 2;
    if (!(d > 0)) throw new Error(`cholesky: matrix is not positive definite (pivot ${j} = ${d})`);
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = s / ljj;
    }
  }
  return l;
}

/** L⁻¹ for lower-triangular L (forward substitution column by column). */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    inv[c * n + c] = 1 / l[c * n + c];
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s += l[i * n + k] * inv[k * n + c];
      inv[i * n + c] = -s / l[i * n + i];
    }
  }
  return inv;
}
