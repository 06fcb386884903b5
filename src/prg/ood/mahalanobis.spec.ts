import { describe, expect, it } from 'vitest';
import { runGraph } from '../../engine/runtime/session';
import { matvec } from '../testing/linalg';
import { cholesky, invertLower } from './linalg';
import { ProbeRng } from './likelihood';
import {
  fitBackgroundGaussian,
  fitTiedGaussian,
  mahalanobisGraph,
  relativeMahalanobisGraph,
  tiedGaussianFromJson,
  tiedGaussianToJson,
} from './mahalanobis';

const D = 4;
const K = 3;

function sample(n: number, seed: number) {
  const rng = new ProbeRng(seed);
  const centres = [
    [2, 0, 0, 1],
    [-2, 1, 0, 0],
    [0, -2, 2, 0],
  ];
  const f = new Float32Array(n * D);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % K;
    const e = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
    // correlated noise: a fixed lower-triangular mix
    const noise = [e[0], 0.5 * e[0] + e[1], 0.2 * e[1] + 0.3 * e[2], 0.1 * e[3]];
    for (let d = 0; d < D; d++) f[i * D + d] = centres[y[i]][d] + noise[d];
  }
  return { f, y };
}

/** Reference in float64 with plain loops: means, S, the shrunk Σ, and the score. */
function reference(f: Float32Array, y: Int32Array, alpha: number | undefined) {
  const n = y.length;
  const mu = Array.from({ length: K }, () => new Float64Array(D));
  const cnt = new Array(K).fill(0);
  for (let i = 0; i < n; i++) {
    cnt[y[i]]++;
    for (let d = 0; d < D; d++) mu[y[i]][d] += f[i * D + d];
  }
  mu.forEach((m, k) => m.forEach((_, d) => (m[d] /= cnt[k])));
  const xs = Array.from({ length: n }, (_, i) =>
    Array.from({ length: D }, (_, d) => f[i * D + d] - mu[y[i]][d]),
  );
  const s = new Float64Array(D * D);
  for (const x of xs)
    for (let a = 0; a < D; a++) for (let b = 0; b < D; b++) s[a * D + b] += (x[a] * x[b]) / n;
  let tr = 0;
  for (let a = 0; a < D; a++) tr += s[a * D + a];
  const m = tr / D;
  // Ledoit–Wolf straight from the definition: β̄² = (1/n²)·Σ_i ‖x_i x_iᵀ − S‖²_F.
  let delta2 = 0;
  let beta2 = 0;
  for (let a = 0; a < D; a++)
    for (let b = 0; b < D; b++) delta2 += (s[a * D + b] - (a === b ? m : 0)) ** 2;
  for (const x of xs)
    for (let a = 0; a < D; a++)
      for (let b = 0; b < D; b++) beta2 += (x[a] * x[b] - s[a * D + b]) ** 2 / (n * n);
  const al = alpha ?? Math.min(beta2, delta2) / delta2;
  const sigma = s.map((v, i) => (1 - al) * v + (i % (D + 1) === 0 ? al * m + 1e-6 * m : 0));
  const w = invertLower(cholesky(sigma, D), D);
  const score = (x: ArrayLike<number>) =>
    -Math.min(
      ...mu.map((mk) => {
        const z = matvec(
          w,
          Array.from(x, (v, d) => v - mk[d]),
          D,
        );
        return z.reduce((acc, v) => acc + v * v, 0);
      }),
    );
  return { alpha: al, score };
}

/** −MD_0(x): the score of one Gaussian fitted to every row, from the same float64 reference. */
function reference1(f: Float32Array, alpha: number) {
  const n = f.length / D;
  const mu = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) mu[d] += f[i * D + d] / n;
  const s = new Float64Array(D * D);
  for (let i = 0; i < n; i++)
    for (let a = 0; a < D; a++)
      for (let b = 0; b < D; b++)
        s[a * D + b] += ((f[i * D + a] - mu[a]) * (f[i * D + b] - mu[b])) / n;
  let tr = 0;
  for (let a = 0; a < D; a++) tr += s[a * D + a];
  const m = tr / D;
  const sigma = s.map((v, i) => (1 - alpha) * v + (i % (D + 1) === 0 ? alpha * m + 1e-6 * m : 0));
  const w = invertLower(cholesky(sigma, D), D);
  return (x: ArrayLike<number>) => {
    const z = matvec(
      w,
      Array.from(x, (v, d) => v - mu[d]),
      D,
    );
    return -z.reduce((acc, v) => acc + v * v, 0);
  };
}

async function scores(g: ReturnType<typeof mahalanobisGraph>, f: Float32Array, n: number) {
  const out = await runGraph(g, { features: { dtype: 'float32', dims: [n, D], data: f } });
  return out.score.data as Float32Array;
}

describe('Mahalanobis with a tied, shrunk covariance', () => {
  it.each([0.1, undefined])('matches a float64 reference (shrinkage %s)', async (alpha) => {
    const { f, y } = sample(300, 1);
    const g = await fitTiedGaussian(f, y, D, K, { shrinkage: alpha, chunk: 64 });
    const ref = reference(f, y, alpha);
    expect(g.shrinkage).toBeCloseTo(ref.alpha, 5);
    expect(g.counts).toEqual([100, 100, 100]);
    const test = sample(20, 2);
    const got = await scores(mahalanobisGraph(g), test.f, 20);
    for (let i = 0; i < 20; i++) {
      const want = ref.score(test.f.subarray(i * D, (i + 1) * D));
      // float32 whitening of O(10) distances: 1e-3 relative
      expect(Math.abs(got[i] - want)).toBeLessThan(1e-3 * Math.max(1, Math.abs(want)));
    }
  });

  it('scores in-distribution points above far-away ones, and survives the JSON round trip', async () => {
    const { f, y } = sample(300, 3);
    const g = await fitTiedGaussian(f, y, D, K);
    const far = new Float32Array([10, 10, -10, 5, -8, 9, 7, -6]);
    const near = sample(2, 4).f;
    const both = new Float32Array([...near, ...far]);
    const s1 = await scores(mahalanobisGraph(g), both, 4);
    expect(Math.min(s1[0], s1[1])).toBeGreaterThan(Math.max(s1[2], s1[3]));
    const back = tiedGaussianFromJson(JSON.parse(JSON.stringify(tiedGaussianToJson(g))));
    const s2 = await scores(mahalanobisGraph(back), both, 4);
    for (let i = 0; i < 4; i++) expect(s2[i]).toBeCloseTo(s1[i], 2);
  });

  it('leaves classes without samples out of the minimum', async () => {
    const { f, y } = sample(30, 5);
    const g = await fitTiedGaussian(f, y, D, K + 1, { shrinkage: 0.2 });
    expect(g.counts[K]).toBe(0);
    const s = await scores(mahalanobisGraph(g), f.subarray(0, D), 1);
    expect(Number.isFinite(s[0])).toBe(true);
    const out = await runGraph(mahalanobisGraph(g), {
      features: { dtype: 'float32', dims: [1, D], data: f.subarray(0, D) },
    });
    expect(out.d2.dims).toEqual([1, K]);
  });

  it('relative score = class-conditional score + distance to the class-agnostic Gaussian (Ren et al. 2021)', async () => {
    const { f, y } = sample(300, 6);
    const g = await fitTiedGaussian(f, y, D, K, { shrinkage: 0.1 });
    const bg = await fitBackgroundGaussian(f, D, { shrinkage: 0.1 });
    expect(bg.counts).toEqual([300]);
    // The background is the one-class fit: the reference with every label 0.
    const ref0 = reference1(f, 0.1);
    const test = sample(20, 7);
    const rel = await scores(relativeMahalanobisGraph(g, bg), test.f, 20);
    const ref = reference(f, y, 0.1);
    for (let i = 0; i < 20; i++) {
      const x = test.f.subarray(i * D, (i + 1) * D);
      const want = ref.score(x) - ref0(x);
      // two float32 whitenings of O(10) distances: 2e-3 relative
      expect(Math.abs(rel[i] - want)).toBeLessThan(2e-3 * Math.max(1, Math.abs(want)));
    }
    expect(() => relativeMahalanobisGraph(g, g)).toThrow(/one Gaussian/);
  });

  it('rejects bad labels and mismatched sizes', async () => {
    await expect(fitTiedGaussian(new Float32Array(8), [0, 5], D, K)).rejects.toThrow(/label 5/);
    await expect(fitTiedGaussian(new Float32Array(7), [0, 1], D, K)).rejects.toThrow(/values/);
  });
});
