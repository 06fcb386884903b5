/**
 * Class-conditional Gaussians with one shared (tied) covariance, the Mahalanobis OOD score of
 * Lee et al. 2018 ("A simple unified framework for detecting out-of-distribution samples"):
 *     score(f) = −min_k (f − μ_k)ᵀ Σ⁻¹ (f − μ_k)        (higher = more in-distribution)
 * on a feature f of the image (x_{t*} as the head sees it, or the head's hidden layer).
 *
 * Σ is the pooled within-class covariance S = (1/n) Σ_i (f_i − μ_{y_i})(f_i − μ_{y_i})ᵀ, shrunk
 * toward a scaled identity, Σ = (1 − α)·S + α·(tr S / D)·I, with α from the Ledoit–Wolf formula
 * (Ledoit & Wolf 2004; the estimator scikit-learn's `ledoit_wolf` computes) unless given. At
 * 784 dimensions many pixels are almost constant (image borders), so S alone is near-singular.
 * The score uses the whitening W = L⁻¹ of the Cholesky factor Σ = L·Lᵀ:
 *     (f − μ_k)ᵀ Σ⁻¹ (f − μ_k) = ‖W f − W μ_k‖².
 */
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { Graph, tensor } from '../../engine/onnx/types';
import { GraphSession, SessionOptions } from '../../engine/runtime/session';
import { cholesky, invertLower } from './linalg';

export interface TiedGaussian {
  dim: number;
  classes: number;
  /** Training samples per class (a class with 0 samples is left out of the min). */
  counts: number[];
  /** Row-major [classes, dim]. */
  means: Float64Array;
  /** Lower-triangular W = L⁻¹, row-major [dim, dim]. */
  whiten: Float64Array;
  /** α of the shrinkage toward (tr S / D)·I. */
  shrinkage: number;
  n: number;
}

export interface FitGaussianOptions {
  /** A fixed α in [0, 1]; default: the Ledoit–Wolf estimate. */
  shrinkage?: number;
  /** Rows per Gram-matrix chunk on ORT. */
  chunk?: number;
  session?: SessionOptions;
}

/** XᵀX of a [rows, D] chunk on ORT (a Gemm; its BLAS is much faster than JS loops at D = 784). */
function gramGraph(dim: number): Graph {
  const b = new GraphBuilder('gram');
  const x = b.input('x', ['B', dim]);
  b.output(b.gemm(x, x, undefined, { transA: true }), 'g');
  return b.build();
}

/**
 * Fit class means and the shrunk tied covariance to `features` [n, dim] with labels in
 * [0, classes). Throws on a label out of range or fewer than two samples.
 */
export async function fitTiedGaussian(
  features: Float32Array,
  labels: ArrayLike<number>,
  dim: number,
  classes: number,
  opts: FitGaussianOptions = {},
): Promise<TiedGaussian> {
  const n = labels.length;
  if (features.length !== n * dim)
    throw new Error(`mahalanobis fit: ${features.length} values for ${n} rows of ${dim}`);
  if (n < 2) throw new Error(`mahalanobis fit: needs at least 2 samples, got ${n}`);
  const counts = new Array<number>(classes).fill(0);
  const means = new Float64Array(classes * dim);
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= classes)
      throw new Error(`mahalanobis fit: label ${y} of sample ${i} is not in [0, ${classes})`);
    counts[y]++;
    for (let d = 0; d < dim; d++) means[y * dim + d] += features[i * dim + d];
  }
  for (let k = 0; k < classes; k++)
    if (counts[k]) for (let d = 0; d < dim; d++) means[k * dim + d] /= counts[k];

  // S = (1/n)·XᵀX over class-centred rows X, accumulated in float64 across chunks.
  const chunk = opts.chunk ?? 2048;
  const s = new Float64Array(dim * dim);
  let sumNorm4 = 0;
  const session = await GraphSession.create(gramGraph(dim), opts.session);
  try {
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      const x = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) {
        const i = start + r;
        const y = labels[i];
        let norm2 = 0;
        for (let d = 0; d < dim; d++) {
          const v = features[i * dim + d] - means[y * dim + d];
          x[r * dim + d] = v;
          norm2 += v * v;
        }
        sumNorm4 += norm2 * norm2;
      }
      const out = await session.run({ x: { dtype: 'float32', dims: [rows, dim], data: x } });
      const g = out.g.data as Float32Array;
      for (let i = 0; i < dim * dim; i++) s[i] += g[i];
    }
  } finally {
    await session.release();
  }
  for (let i = 0; i < dim * dim; i++) s[i] /= n;
  // Exact symmetry (float32 Gemm may differ in the last bit across the diagonal).
  for (let i = 0; i < dim; i++)
    for (let j = 0; j < i; j++) {
      const v = 0.5 * (s[i * dim + j] + s[j * dim + i]);
      s[i * dim + j] = v;
      s[j * dim + i] = v;
    }

  let trace = 0;
  for (let i = 0; i < dim; i++) trace += s[i * dim + i];
  const mu = trace / dim;
  let alpha = opts.shrinkage;
  if (alpha === undefined) alpha = ledoitWolf(s, dim, mu, sumNorm4, n);
  if (!(alpha >= 0 && alpha <= 1))
    throw new Error(`mahalanobis fit: shrinkage ${alpha} not in [0, 1]`);
  // A floor of 1e-6·mu keeps Cholesky defined when every feature is constant (α = 0, S = 0).
  const floor = mu > 0 ? 1e-6 * mu : 1e-6;
  const sigma = new Float64Array(dim * dim);
  for (let i = 0; i < dim * dim; i++) sigma[i] = (1 - alpha) * s[i];
  for (let i = 0; i < dim; i++) sigma[i * dim + i] += alpha * mu + floor;
  const whiten = invertLower(cholesky(sigma, dim), dim);
  return { dim, classes, counts, means, whiten, shrinkage: alpha, n };
}

/**
 * The class-agnostic Gaussian N(μ_0, Σ_0) of all `features` [n, dim] (one class, same shrinkage
 * rules): the background of relativeMahalanobisGraph.
 */
export function fitBackgroundGaussian(
  features: Float32Array,
  dim: number,
  opts: FitGaussianOptions = {},
): Promise<TiedGaussian> {
  return fitTiedGaussian(features, new Int32Array(features.length / dim), dim, 1, opts);
}

/**
 * Ledoit–Wolf α = min(β̄², δ²)/δ² with δ² = ‖S − μI‖²_F and
 * β̄² = (1/n²)·Σ_i ‖x_i x_iᵀ − S‖²_F = (Σ_i ‖x_i‖⁴ − n‖S‖²_F)/n²  (since Σ_i x_iᵀ S x_i = n‖S‖²_F).
 */
function ledoitWolf(s: Float64Array, dim: number, mu: number, sumNorm4: number, n: number) {
  let fro2 = 0;
  let delta2 = 0;
  for (let i = 0; i < dim; i++)
    for (let j = 0; j < dim; j++) {
      const v = s[i * dim + j];
      fro2 += v * v;
      const c = i === j ? v - mu : v;
      delta2 += c * c;
    }
  if (delta2 <= 0) return 1;
  const beta2 = Math.max(0, (sumNorm4 - n * fro2) / (n * n));
  return Math.min(beta2, delta2) / delta2;
}

/** W·μ_k for the classes with samples, as a [K', D] constant, and Wᵀ as a [D, D] constant. */
function whitenedConstants(g: TiedGaussian) {
  const D = g.dim;
  const present = g.counts.flatMap((c, k) => (c > 0 ? [k] : []));
  const wt = tensor('float32', [D, D]);
  for (let i = 0; i < D; i++) for (let j = 0; j <= i; j++) wt.data[j * D + i] = g.whiten[i * D + j];
  const wm = tensor('float32', [present.length, D]);
  present.forEach((k, r) => {
    for (let i = 0; i < D; i++) {
      let acc = 0;
      for (let j = 0; j <= i; j++) acc += g.whiten[i * D + j] * g.means[k * D + j];
      wm.data[r * D + i] = acc;
    }
  });
  return { wt, wm };
}

/**
 * Appends ‖W f − W μ_k‖² for every present class to `b`: [N, K']. `tag` keeps two Gaussians'
 * constants apart.
 */
export function appendSquaredDistances(
  b: GraphBuilder,
  f: Value,
  g: TiedGaussian,
  tag: string,
): Value {
  const { wt, wm } = whitenedConstants(g);
  const z = b.matmul(f, b.const(wt, `${tag}whiten_t`));
  const diff = b.sub(b.unsqueeze(z, [1]), b.const(wm, `${tag}whitened_means`));
  return b.reduceSum(b.mul(diff, diff), [2], false);
}

/**
 * The scoring graph: input `features` [N, D], output `score` [N] = −min_k ‖W f − W μ_k‖² over
 * the classes with samples, and `d2` [N, K'] for those classes.
 */
export function mahalanobisGraph(g: TiedGaussian, name = 'mahalanobis'): Graph {
  const b = new GraphBuilder(name);
  const f = b.input('features', ['N', g.dim]);
  const d2 = appendSquaredDistances(b, f, g, '');
  b.output(b.reduceMax(b.neg(d2), [1], false), 'score');
  b.output(d2, 'd2');
  return b.build();
}

/**
 * The relative Mahalanobis score of Ren et al. 2021 ("A simple fix to Mahalanobis distance for
 * improving near-OOD detection"): RMD_k(f) = MD_k(f) − MD_0(f), where MD_0 is the distance to one
 * class-agnostic Gaussian N(μ_0, Σ_0) fitted to all training features (`background`, a
 * TiedGaussian with one class), and score = −min_k RMD_k = −min_k MD_k + MD_0.
 *
 * Why: MD_k alone also measures how unusual f is along directions every class shares. On
 * x_{t*}, which is still image-like, those are the background pixels, and an image with a plain
 * black background (an MNIST digit) sits closer to every Fashion-MNIST class mean than a
 * Fashion-MNIST image does (docs/ood.md: AUROC 0.52). Subtracting MD_0 keeps only what the
 * class-conditional model explains better than the class-agnostic one — a log-likelihood ratio
 * of the two Gaussians up to constants, the same idea as Ren et al. 2019's likelihood ratio.
 */
export function relativeMahalanobisGraph(
  g: TiedGaussian,
  background: TiedGaussian,
  name = 'relative_mahalanobis',
): Graph {
  if (background.dim !== g.dim || background.counts.filter((c) => c > 0).length !== 1)
    throw new Error(
      `${name}: the background must be one Gaussian of dim ${g.dim} ` +
        `(got ${background.classes} classes of dim ${background.dim})`,
    );
  const b = new GraphBuilder(name);
  const f = b.input('features', ['N', g.dim]);
  const d2 = appendSquaredDistances(b, f, g, '');
  const d0 = appendSquaredDistances(b, f, background, 'bg_');
  b.output(b.add(b.reduceMax(b.neg(d2), [1], false), b.reduceSum(d0, [1], false)), 'score');
  b.output(b.sub(d2, d0), 'd2');
  return b.build();
}

// ---- ood.json encoding -------------------------------------------------------------------------

export interface TiedGaussianJson {
  dim: number;
  classes: number;
  counts: number[];
  shrinkage: number;
  n: number;
  /** base64 of little-endian float32, [classes, dim] */
  means: string;
  /** base64 of little-endian float32, the lower triangle of W row by row (D·(D+1)/2 values) */
  whitenLower: string;
}

function f32ToBase64(xs: ArrayLike<number>): string {
  const a = Float32Array.from(xs);
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

function base64ToF32(s: string, want: number, what: string): Float32Array {
  const buf = Buffer.from(s, 'base64');
  if (buf.byteLength !== want * 4)
    throw new Error(`ood stats: ${what} has ${buf.byteLength / 4} values, expected ${want}`);
  const out = new Float32Array(want);
  for (let i = 0; i < want; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}

export function tiedGaussianToJson(g: TiedGaussian): TiedGaussianJson {
  const D = g.dim;
  const lower = new Float32Array((D * (D + 1)) / 2);
  let p = 0;
  for (let i = 0; i < D; i++) for (let j = 0; j <= i; j++) lower[p++] = g.whiten[i * D + j];
  return {
    dim: D,
    classes: g.classes,
    counts: g.counts,
    shrinkage: g.shrinkage,
    n: g.n,
    means: f32ToBase64(g.means),
    whitenLower: f32ToBase64(lower),
  };
}

export function tiedGaussianFromJson(j: TiedGaussianJson, what = 'mahalanobis'): TiedGaussian {
  const D = j?.dim;
  const K = j?.classes;
  if (!Number.isInteger(D) || D < 1 || !Number.isInteger(K) || K < 1)
    throw new Error(`ood stats ${what}: dim and classes must be positive integers`);
  if (!Array.isArray(j.counts) || j.counts.length !== K)
    throw new Error(`ood stats ${what}: counts must list ${K} classes`);
  const means = Float64Array.from(base64ToF32(j.means, K * D, `${what}.means`));
  const lower = base64ToF32(j.whitenLower, (D * (D + 1)) / 2, `${what}.whitenLower`);
  const whiten = new Float64Array(D * D);
  let p = 0;
  for (let i = 0; i < D; i++) for (let jj = 0; jj <= i; jj++) whiten[i * D + jj] = lower[p++];
  return { dim: D, classes: K, counts: j.counts, means, whiten, shrinkage: j.shrinkage, n: j.n };
}
