import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphSession } from '../../engine/runtime/session';
import { PrgModel, loadPrgModel } from '../inference';
import { GVP, ICFM } from '../interpolants';
import { Rng } from '../rng';
import { solveOde } from '../solvers';
import { createTinyModel } from '../testing/tiny-model';
import { fitGaussian, frechetDistance, frechetDistanceOf } from './fid';
import { imageGridPng } from './grid';
import {
  gaussianFit,
  gaussianPathEnd,
  gaussianFlowSolved,
  gaussianPathVelocity,
  ksNormal,
  gaussianFlowCorrelation,
  pixelMoments,
  meanRowCorrelation,
  normalCdf,
  reverseNoiseStats,
} from './noise-stats';
import { sampleNoise } from './sample';

const C = 1;
const H = 8;
const W = 8;
const D = C * H * W;
let root: string;
let model: PrgModel;

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-generation-'));
  await createTinyModel(join(root, 'm'), { classes: 3, inputShape: [C, H, W] });
  model = await loadPrgModel(join(root, 'm'), { threads: 1 });
});

afterAll(async () => {
  await model?.release();
  await fs.rm(root, { recursive: true, force: true });
});

const gauss = (d: number, mean: number[], cov: number[]) => ({
  d,
  mean: Float64Array.from(mean),
  cov: Float64Array.from(cov),
});

describe('Fréchet distance', () => {
  it('1-D: (μ₁ − μ₂)² + (σ₁ − σ₂)²', () => {
    expect(frechetDistance(gauss(1, [1], [4]), gauss(1, [-2], [9]))).toBeCloseTo(9 + 1, 10);
  });

  it('diagonal covariances: ‖Δμ‖² + Σ (√a − √b)²', () => {
    const a = gauss(3, [0, 1, 2], [1, 0, 0, 0, 4, 0, 0, 0, 9]);
    const b = gauss(3, [1, 1, 0], [4, 0, 0, 0, 1, 0, 0, 0, 16]);
    expect(frechetDistance(a, b)).toBeCloseTo(
      1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 4) ** 2,
      9,
    );
  });

  it('2-D, non-commuting covariances: Tr√(Σ₁Σ₂) = √(Tr Σ₁Σ₂ + 2√(det Σ₁ det Σ₂))', () => {
    // For 2×2 PSD M, Tr √M = √(Tr M + 2√det M); M = Σ₁^{1/2}Σ₂Σ₁^{1/2} has Tr Σ₁Σ₂, det Σ₁·det Σ₂.
    const s1 = [2, 1, 1, 3];
    const s2 = [1, -0.5, -0.5, 2];
    const tr12 = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
    const det1 = s1[0] * s1[3] - s1[1] * s1[2];
    const det2 = s2[0] * s2[3] - s2[1] * s2[2];
    const crossTrace = Math.sqrt(tr12 + 2 * Math.sqrt(det1 * det2));
    const want = 0.5 ** 2 + 0.25 ** 2 + (2 + 3 + 1 + 2) - 2 * crossTrace;
    expect(frechetDistance(gauss(2, [0.5, 0], s1), gauss(2, [0, 0.25], s2))).toBeCloseTo(want, 9);
  });

  it('fits mean and unbiased covariance; two samples of one Gaussian are close, shifted ones are not', () => {
    const g = fitGaussian([1, 2, 3, 4, 5, 9], 3, 2);
    expect(Array.from(g.mean)).toEqual([3, 5]);
    expect(Array.from(g.cov)).toEqual([4, 7, 7, 13]);
    const rng = new Rng(1);
    const n = 2000;
    const d = 4;
    const a = rng.fillNormal(new Float32Array(n * d));
    const b = rng.fillNormal(new Float32Array(n * d));
    const same = frechetDistanceOf(a, n, b, n, d);
    const shifted = frechetDistanceOf(
      a,
      n,
      b.map((x) => x + 1),
      n,
      d,
    );
    expect(same).toBeLessThan(0.05);
    expect(shifted).toBeGreaterThan(d - 0.1);
    expect(frechetDistanceOf(a, n, a, n, d)).toBeLessThan(1e-9);
  });
});

describe('noise statistics', () => {
  it('Φ and the KS statistic match known values', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-1)).toBeCloseTo(0.158655, 6);
    // One value at 0: the empirical CDF jumps 0 → 1 where Φ = 0.5.
    expect(ksNormal([0])).toBeCloseTo(0.5, 7);
    const rng = new Rng(2);
    expect(ksNormal(rng.fillNormal(new Float64Array(20000)))).toBeLessThan(0.015);
    expect(ksNormal(rng.fillUniform(new Float64Array(20000), -1, 1))).toBeGreaterThan(0.05);
  });

  it('a N(0, I) sample fits; a scaled, skewed one does not', () => {
    const rng = new Rng(3);
    const n = 4000;
    const d = 5;
    const z = rng.fillNormal(new Float32Array(n * d));
    const f = gaussianFit(z, n, d);
    expect(Math.abs(f.mean)).toBeLessThan(0.02);
    expect(f.std).toBeCloseTo(1, 1);
    expect(f.pixelSkew.maxAbs).toBeLessThan(0.15);
    expect(f.pixelExcessKurtosis.maxAbs).toBeLessThan(0.3);
    const e = gaussianFit(
      z.map((x) => Math.exp(x)),
      n,
      d,
    );
    expect(e.pixelSkew.mean).toBeGreaterThan(2);
    expect(e.ks).toBeGreaterThan(0.2);
  });

  it('row correlation: 1 for copies, about 0 for independent noise', () => {
    const rng = new Rng(4);
    const a = rng.fillNormal(new Float32Array(10 * 500));
    expect(meanRowCorrelation(a, a, 10)).toBeCloseTo(1, 6);
    expect(
      Math.abs(meanRowCorrelation(a, rng.fillNormal(new Float32Array(5000)), 10)),
    ).toBeLessThan(0.1);
  });

  it('gaussianFlowCorrelation: the exact Gaussian-fit flow keeps an isotropic image, drops a fixed pattern', () => {
    const rng = new Rng(6);
    // N(0, 4 I): the exact map to N(0, I) is a scaling, so x_1 is the image itself.
    const iso = rng.fillNormal(new Float32Array(200 * 50)).map((v) => 2 * v);
    expect(gaussianFlowCorrelation(iso, 200)).toBeGreaterThan(0.95);
    // A fixed pattern plus small noise: standardising each pixel removes the pattern.
    const pattern = Array.from({ length: 50 }, (_, j) => Math.sin(j));
    const fixed = rng
      .fillNormal(new Float32Array(200 * 50))
      .map((v, i) => pattern[i % 50] + 0.05 * v);
    expect(Math.abs(gaussianFlowCorrelation(fixed, 200))).toBeLessThan(0.2);
  });

  it('gaussianPathVelocity is the marginal velocity of a Gaussian: dopri5 lands on the closed form', async () => {
    // Pixels of very different spread, as in MNIST (near-constant borders, varied strokes).
    const n = 300;
    const spreads = [0.01, 0.1, 0.5, 1, 2];
    const rng = new Rng(9);
    const x = rng.fillNormal(new Float64Array(n * spreads.length));
    for (let i = 0; i < x.length; i++) x[i] = 0.3 + spreads[i % spreads.length] * x[i];
    const { mu, sd } = pixelMoments(x, n);
    for (const path of [new ICFM(), new ICFM(0.1), new GVP()]) {
      const exact = gaussianPathEnd(x, n, path);
      const { x: x1 } = await solveOde(gaussianPathVelocity(path, mu, sd), Float64Array.from(x), {
        solver: 'dopri5',
        atol: 1e-8,
        rtol: 1e-8,
      });
      for (let i = 0; i < x.length; i++) expect(x1[i]).toBeCloseTo(exact[i], 3);
      // Without σ_min the closed form is the standardised pixel: N(0, 1) for Gaussian pixels.
      if (path.noiseStd === 0)
        for (let i = 0; i < x.length; i++) {
          const j = i % spreads.length;
          expect(exact[i]).toBeCloseTo((x[i] - mu[j]) / sd[j], 9);
        }
    }
  });

  it('gaussianFlowSolved: 20 Euler steps leave a narrow pixel far short of N(0, 1), dopri5 does not', async () => {
    const n = 400;
    const rng = new Rng(10);
    const narrow = rng.fillNormal(new Float32Array(n)).map((v) => -1 + 0.01 * v);
    const euler = await gaussianFlowSolved(narrow, n, new ICFM(), 'euler', 20);
    expect(euler.exact.std).toBeCloseTo(1, 2);
    // The spread grows like 1/t near the data, which fixed steps of 1/20 cannot follow.
    expect(euler.solved.std).toBeLessThan(0.5);
    const dopri = await gaussianFlowSolved(narrow, n, new ICFM(), 'dopri5', 20);
    expect(dopri.solved.std).toBeGreaterThan(0.99);
    // A wide pixel is followed well by the same 20 Euler steps.
    const wide = rng.fillNormal(new Float32Array(n));
    const eulerWide = await gaussianFlowSolved(wide, n, new ICFM(), 'euler', 20);
    expect(eulerWide.solved.std / eulerWide.exact.std).toBeGreaterThan(0.9);
  });

  it('reverseNoiseStats runs the reverse ODE to t = 1 and reports against a reference sample', async () => {
    const x = new Rng(5).fillUniform(new Float32Array(6 * D), -1, 1);
    const s = await reverseNoiseStats(model, x, 6, { steps: 2, solver: 'euler', batchSize: 4 });
    expect(s).toMatchObject({ n: 6, dim: D, steps: 2, solver: 'euler' });
    const x1 = await model.features(
      { data: x, n: 6 },
      { t: 1, pool: null, steps: 2, solver: 'euler' },
    );
    expect(s.mean).toBeCloseTo(x1.data.reduce((a, b) => a + b, 0) / x1.data.length, 5);
    expect(s.reference.n).toBe(6);
    expect(s.correlationWithImage).toBeCloseTo(meanRowCorrelation(x, x1.data, 6), 6);
    expect(s.gaussianFlowCorrelation).toBeCloseTo(gaussianFlowCorrelation(x, 6), 12);
    const gf = await gaussianFlowSolved(x, 6, new ICFM(), 'euler', 2);
    expect(s.gaussianFlow?.solved.std).toBeCloseTo(gf.solved.std, 12);
    expect(s.gaussianFlow?.exact.std).toBeCloseTo(gf.exact.std, 12);
  });
});

describe('sampling (forward ODE from noise at t = 1 to t = 0)', () => {
  it('returns [n, C, H, W], the same images for the same seed, others for another', async () => {
    const a = await model.sample({ n: 5, steps: 3, seed: 7 });
    expect(a.shape).toEqual([5, C, H, W]);
    expect(a.data.length).toBe(5 * D);
    const b = await model.sample({ n: 5, steps: 3, seed: 7 });
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
    const c = await model.sample({ n: 5, steps: 3, seed: 8 });
    expect(Array.from(c.data)).not.toEqual(Array.from(a.data));
    // The noise is drawn for the whole request: the first images do not depend on n.
    const first = await model.sample({ n: 2, steps: 3, seed: 7 });
    for (let i = 0; i < 2 * D; i++) expect(first.data[i]).toBeCloseTo(a.data[i], 5);
  });

  it('the unrolled graph equals a numeric solve of dx/dt = v(x, t) from t = 1 to 0', async () => {
    const n = 3;
    const session = await GraphSession.create(model.velocity, { threads: 1 });
    try {
      const f = async (x: Float32Array, t: number) =>
        (
          await session.run({
            x: { dtype: 'float32', dims: [n, C, H, W], data: x },
            t: { dtype: 'float32', dims: [n], data: new Float32Array(n).fill(t) },
          })
        ).v.data as Float32Array;
      for (const solver of ['euler', 'midpoint', 'rk4'] as const) {
        const want = await solveOde(f, sampleNoise(n, D, 11), { solver, steps: 4, t0: 1, t1: 0 });
        const got = await model.sample({ n, steps: 4, solver, seed: 11 });
        for (let i = 0; i < want.x.length; i++) expect(got.data[i]).toBeCloseTo(want.x[i], 4);
      }
    } finally {
      await session.release();
    }
  });

  it('dopri5 agrees with rk4 at many steps (both accurate solutions of one ODE)', async () => {
    const a = await model.sample({ n: 1, solver: 'dopri5', seed: 3 });
    const b = await model.sample({ n: 1, solver: 'rk4', steps: 50, seed: 3 });
    let maxDiff = 0;
    for (let i = 0; i < a.data.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(a.data[i] - b.data[i]));
    // atol = rtol = 1e-5 per step; float32 velocity evaluations.
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it('names the bad setting', async () => {
    await expect(model.sample({ n: 0 })).rejects.toThrow(/n=0/);
    await expect(model.sample({ n: 1, steps: 0 })).rejects.toThrow(/steps=0/);
    await expect(model.sample({ n: 1, classLabel: 1 })).rejects.toThrow(
      /the model is unconditional/,
    );
  });

  it('writes a PNG grid of the images', async () => {
    const s = await model.sample({ n: 5, steps: 1 });
    const png = await imageGridPng(s.data, s.shape, { cols: 3, scale: 2 });
    const meta = await sharp(png).metadata();
    // 3 columns × 8 px + 2 gaps, 2 rows × 8 px + 1 gap, all ×2.
    expect([meta.width, meta.height]).toEqual([2 * (3 * 8 + 2), 2 * (2 * 8 + 1)]);
  });
});
