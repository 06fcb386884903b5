/**
 * Dense float64 linear algebra that only tests use, as closed-form references (row-major n×n
 * Float64Array): the likelihood test builds the exact density of a linear ODE from the matrix
 * exponential. Production code needs only src/prg/ood/linalg.ts.
 */

function identity(n: number): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

/** C = A·B for n×n matrices. */
function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
    }
  return c;
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
