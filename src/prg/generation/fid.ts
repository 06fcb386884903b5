/**
 * The Fréchet distance between two Gaussians fitted to feature sets (Heusel et al. 2017, "FID"):
 *
 *   d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}).
 *
 * Tr((Σ₁Σ₂)^{1/2}) is computed as Tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}), the same number (the two
 * matrices are similar), but the second is symmetric positive semi-definite, so both square roots
 * come from symmetric eigendecompositions (ml-matrix) and tiny negative eigenvalues from rounding
 * are clipped to 0 — no complex parts to drop, as scipy's sqrtm route has.
 *
 * Here the features are NOT Inception's: the report uses the hidden tanh layer of a classifier
 * trained in this project (classifier-features.ts), so the number is "FID in PRG-MNIST classifier
 * features", comparable only with itself (same feature model, same sample sizes).
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

export interface Gaussian {
  mean: Float64Array;
  /** Row-major [d, d] covariance. */
  cov: Float64Array;
  d: number;
}

/** Mean and unbiased covariance (divides by n − 1) of x [n, d]. */
export function fitGaussian(x: ArrayLike<number>, n: number, d: number): Gaussian {
  if (n < 2 || x.length !== n * d)
    throw new Error(`fitGaussian: ${x.length} values for n=${n} (≥ 2) × d=${d}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = x[i * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b] += ra * row[b];
    }
  }
  for (let a = 0; a < d; a++)
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  return { mean, cov, d };
}

function toMatrix(a: Float64Array, d: number): Matrix {
  const m = new Matrix(d, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m.set(i, j, a[i * d + j]);
  return m;
}

/** Symmetric PSD square root V diag(√max(λ, 0)) Vᵀ. */
function sqrtPsd(m: Matrix): Matrix {
  const e = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const v = e.eigenvectorMatrix;
  const s = Matrix.diag(e.realEigenvalues.map((l) => Math.sqrt(Math.max(0, l))));
  return v.mmul(s).mmul(v.transpose());
}

/** Tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) = Σ √max(λᵢ, 0). */
function traceSqrtProduct(c1: Matrix, c2: Matrix): number {
  const s1 = sqrtPsd(c1);
  const m = s1.mmul(c2).mmul(s1);
  // Symmetrise: the product is symmetric in exact arithmetic only.
  const sym = m.add(m.transpose()).mul(0.5);
  const e = new EigenvalueDecomposition(sym, { assumeSymmetric: true });
  return e.realEigenvalues.reduce((s, l) => s + Math.sqrt(Math.max(0, l)), 0);
}

/** The squared Fréchet distance between two Gaussians. */
export function frechetDistance(g1: Gaussian, g2: Gaussian): number {
  if (g1.d !== g2.d) throw new Error(`frechetDistance: dimensions ${g1.d} and ${g2.d} differ`);
  const d = g1.d;
  let diff = 0;
  for (let j = 0; j < d; j++) diff += (g1.mean[j] - g2.mean[j]) ** 2;
  let tr = 0;
  for (let j = 0; j < d; j++) tr += g1.cov[j * d + j] + g2.cov[j * d + j];
  const cross = traceSqrtProduct(toMatrix(g1.cov, d), toMatrix(g2.cov, d));
  // Rounding can make a distance between identical sets a hair below 0.
  return Math.max(0, diff + tr - 2 * cross);
}

/** FID between feature sets a [na, d] and b [nb, d]. */
export function frechetDistanceOf(
  a: ArrayLike<number>,
  na: number,
  b: ArrayLike<number>,
  nb: number,
  d: number,
): number {
  return frechetDistance(fitGaussian(a, na, d), fitGaussian(b, nb, d));
}
