/**
 * Small dense float64 linear algebra for the OOD statistics (row-major n×n Float64Array).
 * Sizes are at most the feature width (784 for 28×28 images), where O(n³) in plain loops takes
 * well under a second.
 */

export function identity(n: number): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

/** C = A·B for n×n matrices. */
export function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
    }
  return c;
}

export function transpose(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
  return t;
}

/** y = A·x */
export function matvec(a: Float64Array, x: ArrayLike<number>, n: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += a[i * n + j] * x[j];
    y[i] = s;
  }
  return y;
}

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

/** log det A from its Cholesky factor: 2·Σ log L_ii. */
export function logDetFromCholesky(l: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.log(l[i * n + i]);
  return 2 * s;
}

/** Matrix exponential by scaling and squaring with a Taylor series (float64, small n). */
export function expm(a: Float64Array, n: number): Float64Array {
  let norm = 0;
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let j = 0; j < n; j++) r += Math.abs(a[i * n + j]);
    norm = Math.max(norm, r);
  }
  const s = Math.max(0, Math.ceil(Math.log2(norm)) + 1);
  const scaled = a.map((v) => v / 2 ** s);
  let term = identity(n);
  let sum = identity(n);
  for (let k = 1; k <= 20; k++) {
    term = matmul(term, scaled, n).map((v) => v / k);
    sum = sum.map((v, i) => v + term[i]);
  }
  for (let i = 0; i < s; i++) sum = matmul(sum, sum, n);
  return sum;
}
