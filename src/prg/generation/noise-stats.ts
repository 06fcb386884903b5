/**
 * Does the reverse process reach noise? (issue 16: a flow that is a good generative model is the
 * paper's premise, §3.2: "This process transforms the data distribution into a Gaussian".)
 *
 * x_1 = the reverse ODE (t = 0 → 1) of test images, compared with N(0, I):
 * - pooled moments: mean and std of every value (0 and 1 for N(0, I));
 * - per pixel, across images: mean, std, skewness and excess kurtosis (all 0, 1, 0, 0), summarised
 *   by their mean and largest absolute value over pixels;
 * - the Kolmogorov–Smirnov statistic D = sup |F_n(x) − Φ(x)| of the pooled values;
 * - the mean Pearson correlation between each image x_0 and its x_1. This is *not* a distance
 *   from the ideal: a deterministic flow maps each image to its own x_1, and the exact flow that
 *   does end at N(0, I) keeps much of the image's structure. For a reference the same correlation
 *   is computed for the exact flow of a diagonal Gaussian fit of the same images (each pixel
 *   standardised by its mean and std over the images: the monotone map that takes that Gaussian
 *   onto N(0, I)), `gaussianFlowCorrelation`.
 * Every statistic is also computed on a seeded N(0, I) draw of the same size (`reference`), which
 * says how far from the ideal a finite sample is: per-pixel kurtosis of n draws scatters by about
 * √(24/n), and pooled values of one image are not independent, so the KS statistic's iid critical
 * value would be too strict; compare with the reference instead.
 */
import { PrgModelApi, SolveOptions } from '../inference-api';
import { ICFM, Interpolant, makeInterpolant } from '../interpolants';
import { SolverName } from '../manifest';
import { Rng } from '../rng';
import { VelocityFn, solveOde } from '../solvers/numeric';

export interface MomentSummary {
  /** Mean over pixels. */
  mean: number;
  /** Largest absolute value over pixels. */
  maxAbs: number;
}

export interface GaussianFit {
  n: number;
  dim: number;
  mean: number;
  std: number;
  pixelMean: MomentSummary;
  pixelStd: MomentSummary;
  pixelSkew: MomentSummary;
  pixelExcessKurtosis: MomentSummary;
  ks: number;
}

export interface NoiseStats extends GaussianFit {
  solver: string;
  steps: number;
  /** Mean over images of corr(x_0, x_1); null when x_0 is not given. */
  correlationWithImage: number | null;
  /** The same correlation for the exact flow of a diagonal Gaussian fit of the images. */
  gaussianFlowCorrelation: number | null;
  /**
   * The exact flow of that Gaussian fit under the model's path, integrated by the same solver and
   * steps (`solved`) and in closed form (`exact`): the solver's share of the gap, without a net.
   */
  gaussianFlow: { solved: GaussianFit; exact: GaussianFit } | null;
  /** The same statistics of a seeded N(0, I) sample of n × dim values. */
  reference: GaussianFit;
}

/** Φ(x), the standard normal CDF, via erfc (W. J. Cody's rational approximations are overkill here:
 * Numerical Recipes' erfc Chebyshev fit, |error| < 1.2e-7, far below any KS statistic we read). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Kolmogorov–Smirnov statistic of `values` against N(0, 1). */
export function ksNormal(values: ArrayLike<number>): number {
  const s = Float64Array.from(values).sort();
  const n = s.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = normalCdf(s[i]);
    d = Math.max(d, f - i / n, (i + 1) / n - f);
  }
  return d;
}

function summary(v: Float64Array, target: number): MomentSummary {
  let sum = 0;
  let maxAbs = 0;
  for (const x of v) {
    sum += x;
    maxAbs = Math.max(maxAbs, Math.abs(x - target));
  }
  return { mean: sum / v.length, maxAbs };
}

/** The Gaussian-fit statistics of x [n, dim] (rows are samples). */
export function gaussianFit(x: ArrayLike<number>, n: number, dim: number): GaussianFit {
  if (n < 2 || x.length !== n * dim)
    throw new Error(`gaussianFit: ${x.length} values for n=${n} (≥ 2) × dim=${dim}`);
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < x.length; i++) {
    sum += x[i];
    sq += x[i] * x[i];
  }
  const mean = sum / x.length;
  const std = Math.sqrt(Math.max(0, sq / x.length - mean * mean));
  const pm = new Float64Array(dim);
  const ps = new Float64Array(dim);
  const skew = new Float64Array(dim);
  const kurt = new Float64Array(dim);
  for (let j = 0; j < dim; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += x[i * dim + j];
    m /= n;
    let m2 = 0;
    let m3 = 0;
    let m4 = 0;
    for (let i = 0; i < n; i++) {
      const d = x[i * dim + j] - m;
      const d2 = d * d;
      m2 += d2;
      m3 += d2 * d;
      m4 += d2 * d2;
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    pm[j] = m;
    ps[j] = Math.sqrt(m2);
    // A constant pixel (e.g. an always-black border that never moved) has no shape: count it as 0.
    skew[j] = m2 > 1e-12 ? m3 / m2 ** 1.5 : 0;
    kurt[j] = m2 > 1e-12 ? m4 / (m2 * m2) - 3 : 0;
  }
  return {
    n,
    dim,
    mean,
    std,
    pixelMean: summary(pm, 0),
    pixelStd: summary(ps, 1),
    pixelSkew: summary(skew, 0),
    pixelExcessKurtosis: summary(kurt, 0),
    ks: ksNormal(x),
  };
}

/** Mean over rows of the Pearson correlation between a [n, dim] and b [n, dim]. */
export function meanRowCorrelation(a: ArrayLike<number>, b: ArrayLike<number>, n: number): number {
  const dim = a.length / n;
  let total = 0;
  for (let i = 0; i < n; i++) {
    let ma = 0;
    let mb = 0;
    for (let j = 0; j < dim; j++) {
      ma += a[i * dim + j];
      mb += b[i * dim + j];
    }
    ma /= dim;
    mb /= dim;
    let sab = 0;
    let saa = 0;
    let sbb = 0;
    for (let j = 0; j < dim; j++) {
      const da = a[i * dim + j] - ma;
      const db = b[i * dim + j] - mb;
      sab += da * db;
      saa += da * da;
      sbb += db * db;
    }
    total += saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
  }
  return total / n;
}

/** Per-pixel mean and std over the images [n, dim] (population std: the Gaussian fit's). */
export function pixelMoments(
  images: ArrayLike<number>,
  n: number,
): { mu: Float64Array; sd: Float64Array } {
  const dim = images.length / n;
  const mu = new Float64Array(dim);
  const sd = new Float64Array(dim);
  for (let j = 0; j < dim; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += images[i * dim + j];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (images[i * dim + j] - m) ** 2;
    mu[j] = m;
    sd[j] = Math.sqrt(v / n);
  }
  return { mu, sd };
}

/** V(t) = α²s² + σ² + σ_min²: the variance of x_t on `path` for a pixel of data variance s². */
function pathVariance(path: Interpolant, t: number, s2: number): number {
  return path.alpha(t) ** 2 * s2 + path.sigma(t) ** 2 + path.noiseStd ** 2;
}

/**
 * x_1 of the exact flow of a diagonal Gaussian fit of `images` [n, dim] under `path`, in closed
 * form. The flow is affine per pixel (`gaussianPathVelocity`): x_t − α(t)μ_j grows as √V_j(t), so
 *   x_1 = α(1)μ_j + √(V_j(1) / V_j(0))·(x_0 − α(0)μ_j),
 * which for ICFM and GVP without σ_min is the standardised pixel (x_0 − μ_j) / s_j (0 where s_j is
 * 0: a point mass stays one under any flow). With σ_min > 0 the path starts from the data widened
 * by σ_min, so clean images end narrower than N(0, I).
 */
export function gaussianPathEnd(
  images: ArrayLike<number>,
  n: number,
  path: Interpolant,
  { mu, sd } = pixelMoments(images, n),
): Float64Array {
  const dim = images.length / n;
  const [a0, a1] = [path.alpha(0), path.alpha(1)];
  const z = new Float64Array(n * dim);
  for (let j = 0; j < dim; j++) {
    const v0 = pathVariance(path, 0, sd[j] * sd[j]);
    const gain = v0 > 1e-24 ? Math.sqrt(pathVariance(path, 1, sd[j] * sd[j]) / v0) : 0;
    for (let i = 0; i < n; i++)
      z[i * dim + j] = a1 * mu[j] + gain * (images[i * dim + j] - a0 * mu[j]);
  }
  return z;
}

/**
 * corr(x_0, x_1) of the exact flow of a diagonal Gaussian fit of `images` [n, dim]
 * (`gaussianPathEnd` of ICFM, the standardised pixels). That flow ends exactly at N(0, I) when
 * the data are that Gaussian, yet its x_1 still looks like the image wherever pixels vary
 * together — the value a flow reaching noise can have.
 */
export function gaussianFlowCorrelation(images: ArrayLike<number>, n: number): number {
  return meanRowCorrelation(images, gaussianPathEnd(images, n, new ICFM()), n);
}

/**
 * The marginal velocity of `path` when the data are N(μ, diag s²): x_t is then Gaussian per pixel
 * with mean α(t)μ and variance V(t) = α²s² + σ² + σ_min², and the flow that keeps it so is
 *   v(x, t) = α'μ + (V'/2V)·(x − αμ),   V'/2 = αα's² + σσ'
 * (paper §3.1, eq. 2: the marginal of the conditional velocities u_t, E[u_t | x_t], for
 * independent data and noise). Where V = 0 (a constant pixel at t = 0 with σ_min = 0) x − αμ is 0
 * too, and the deviation term is dropped. OT-CFM couples data and noise by minibatch OT, so for
 * it this is the ICFM field: a reference for the solver, not OT-CFM's own marginal.
 */
export function gaussianPathVelocity(
  path: Interpolant,
  mu: Float64Array,
  sd: Float64Array,
): VelocityFn<Float64Array> {
  const dim = mu.length;
  return (x, t) => {
    const a = path.alpha(t);
    const da = path.dAlpha(t);
    const s = path.sigma(t);
    const ds = path.dSigma(t);
    const coef = new Float64Array(dim);
    for (let j = 0; j < dim; j++) {
      const s2 = sd[j] * sd[j];
      const v = pathVariance(path, t, s2);
      coef[j] = v > 0 ? (a * da * s2 + s * ds) / v : 0;
    }
    const out = new Float64Array(x.length);
    for (let k = 0; k < x.length; k++) {
      const j = k % dim;
      out[k] = da * mu[j] + coef[j] * (x[k] - a * mu[j]);
    }
    return out;
  };
}

/**
 * The solver's own error, without a net: x_1 of the exact Gaussian-fit flow of `images` [n, dim]
 * under `path`, integrated from the images by `solver` in `steps` (as the model's reverse ODE
 * is), beside its closed form. Where the solved x_1 falls short of the closed form, the solver
 * does, whatever the net has learnt.
 */
export async function gaussianFlowSolved(
  images: ArrayLike<number>,
  n: number,
  path: Interpolant,
  solver: SolverName,
  steps: number,
): Promise<{ solved: GaussianFit; exact: GaussianFit }> {
  const dim = images.length / n;
  const moments = pixelMoments(images, n);
  const x0 = Float64Array.from(images);
  const f = gaussianPathVelocity(path, moments.mu, moments.sd);
  const { x } = await solveOde(f, x0, { solver, steps });
  return {
    solved: gaussianFit(x, n, dim),
    exact: gaussianFit(gaussianPathEnd(images, n, path, moments), n, dim),
  };
}

/**
 * x_1 of `images` [n, C, H, W] (model input space) by the reverse ODE to t = 1, and its statistics
 * against N(0, I). Runs in batches of `batchSize`.
 */
export async function reverseNoiseStats(
  model: PrgModelApi,
  images: Float32Array,
  n: number,
  opts: SolveOptions & { batchSize?: number; seed?: number } = {},
): Promise<NoiseStats> {
  const dim = images.length / n;
  const bs = opts.batchSize ?? 64;
  const x1 = new Float32Array(images.length);
  for (let s = 0; s < n; s += bs) {
    const m = Math.min(bs, n - s);
    const f = await model.features(
      { data: images.slice(s * dim, (s + m) * dim), n: m },
      { steps: opts.steps, solver: opts.solver, t: 1, pool: null },
    );
    x1.set(f.data, s * dim);
  }
  const ref = new Rng(`${opts.seed ?? 0}:noise-reference`).fillNormal(new Float32Array(n * dim));
  const solver = opts.solver ?? model.manifest.solver.name;
  const steps = opts.steps ?? model.manifest.solver.steps;
  return {
    ...gaussianFit(x1, n, dim),
    solver,
    steps,
    correlationWithImage: meanRowCorrelation(images, x1, n),
    gaussianFlowCorrelation: gaussianFlowCorrelation(images, n),
    gaussianFlow: await gaussianFlowSolved(
      images,
      n,
      makeInterpolant(model.manifest.interpolant),
      solver,
      steps,
    ),
    reference: gaussianFit(ref, n, dim),
  };
}
