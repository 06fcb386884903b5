import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../engine/onnx/builder';
import { runGraph } from '../../engine/runtime/session';
import { PrgModel } from '../inference';
import { LoadedModelDir, readModelDir } from '../model-dir/io';
import { createTinyModel } from '../testing/tiny-model';
import {
  columnStats,
  deepFeatureDim,
  deepFeatureGraph,
  deepFeatureSpec,
  deepMahalanobisGraph,
  residualBlockOutputs,
  standardise,
  unstandardiseGaussian,
} from './deep';
import { headHiddenGraph } from './head-hidden';
import { ProbeRng } from './likelihood';
import { fitTiedGaussian } from './mahalanobis';

const S: [number, number, number] = [1, 8, 8];
const D = 64;
const N = 12;
let root: string;
let loaded: LoadedModelDir;

function images(n: number, seed: number): Float32Array {
  const rng = new ProbeRng(seed);
  return Float32Array.from({ length: n * D }, () => Math.max(-1, Math.min(1, 0.6 * rng.normal())));
}

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-deep-'));
  const dir = (await createTinyModel(join(root, 'm'), { classes: 3, inputShape: S })).dir;
  loaded = await readModelDir(dir);
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/**
 * Float64 reference of the deep features: the raw block activations and the hidden layer from
 * separate graph runs, averaged over space and concatenated in float64.
 */
async function referenceFeatures(x: Float32Array, xt: Float32Array, tStar: number) {
  const blocks = residualBlockOutputs(loaded.velocity);
  const b = GraphBuilder.from(loaded.velocity);
  blocks.forEach((bl, i) => b.output(b.value(bl.name), `block${i}`));
  const g = b.build();
  const rows: number[][] = Array.from({ length: N }, () => []);
  for (const [img, t] of [
    [x, 0],
    [xt, tStar],
  ] as const) {
    const out = await runGraph(g, {
      x: { dtype: 'float32', dims: [N, ...S], data: img },
      t: { dtype: 'float32', dims: [N], data: new Float32Array(N).fill(t) },
    });
    blocks.forEach((bl, i) => {
      const a = out[`block${i}`].data as Float32Array;
      const hw = a.length / (N * bl.channels);
      for (let n = 0; n < N; n++)
        for (let c = 0; c < bl.channels; c++) {
          let s = 0;
          for (let p = 0; p < hw; p++) s += a[(n * bl.channels + c) * hw + p];
          rows[n].push(s / hw);
        }
    });
  }
  const h = await runGraph(headHiddenGraph(loaded.head), {
    features: { dtype: 'float32', dims: [N, D], data: xt },
  });
  const hd = h.hidden.data as Float32Array;
  const H = hd.length / N;
  for (let n = 0; n < N; n++) for (let j = 0; j < H; j++) rows[n].push(hd[n * H + j]);
  return rows;
}

describe('mahalanobis_deep graphs', () => {
  it('finds the U-Net residual blocks and lays out 2 × Σ channels + hidden values', () => {
    const blocks = residualBlockOutputs(loaded.velocity);
    // Tiny U-Net: two levels down, the middle block, two levels up.
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    const spec = deepFeatureSpec(loaded.velocity, loaded.head, 0.5);
    const sumC = blocks.reduce((a, b) => a + b.channels, 0);
    expect(deepFeatureDim(spec)).toBe(2 * sumC + 16);
  });

  it('pooled block features and the hidden layer match a float64 reference', async () => {
    const tStar = loaded.manifest.solver.tStar;
    const spec = deepFeatureSpec(loaded.velocity, loaded.head, tStar);
    const x = images(N, 1);
    const model = new PrgModel(loaded, { threads: 1 }, []);
    const xt = (await model.features({ data: x, n: N })).data;
    await model.release();
    const ref = await referenceFeatures(x, xt, tStar);
    const out = await runGraph(deepFeatureGraph(loaded.velocity, loaded.head, spec, S), {
      images: { dtype: 'float32', dims: [N, ...S], data: x },
      xt: { dtype: 'float32', dims: [N, D], data: xt },
      features: { dtype: 'float32', dims: [N, D], data: xt },
    });
    const f = out.deep.data as Float32Array;
    const dim = deepFeatureDim(spec);
    expect(f.length).toBe(N * dim);
    // float32 means of ≤ 64 activations of O(1): agreement to a few ulps of the largest value.
    let worst = 0;
    for (let n = 0; n < N; n++)
      for (let j = 0; j < dim; j++) worst = Math.max(worst, Math.abs(f[n * dim + j] - ref[n][j]));
    expect(worst).toBeLessThan(1e-5);
  });

  it('the score equals −min_k (z − μ_k)ᵀ Σ⁻¹ (z − μ_k) on standardised features, in float64', async () => {
    const tStar = loaded.manifest.solver.tStar;
    const spec = deepFeatureSpec(loaded.velocity, loaded.head, tStar);
    const dim = deepFeatureDim(spec);
    const nFit = 60;
    const x = images(nFit, 2);
    const model = new PrgModel(loaded, { threads: 1 }, []);
    const xt = (await model.features({ data: x, n: nFit })).data;
    await model.release();
    const g = deepFeatureGraph(loaded.velocity, loaded.head, spec, S);
    const f = (
      await runGraph(g, {
        images: { dtype: 'float32', dims: [nFit, ...S], data: x },
        xt: { dtype: 'float32', dims: [nFit, D], data: xt },
        features: { dtype: 'float32', dims: [nFit, D], data: xt },
      })
    ).deep.data as Float32Array;
    const labels = Int32Array.from({ length: nFit }, (_, i) => i % 3);
    const { mean, sd } = columnStats(f, nFit, dim);
    const z = standardise(f, nFit, dim, mean, sd);
    const gz = await fitTiedGaussian(z, labels, dim, 3, { session: { threads: 1 } });
    const gf = unstandardiseGaussian(gz, mean, sd);
    // Score the first N fitting images through the one scoring graph.
    const score = (
      await runGraph(deepMahalanobisGraph(loaded.velocity, loaded.head, spec, S, gf), {
        images: { dtype: 'float32', dims: [N, ...S], data: x.subarray(0, N * D) },
        xt: { dtype: 'float32', dims: [N, D], data: xt.subarray(0, N * D) },
        features: { dtype: 'float32', dims: [N, D], data: xt.subarray(0, N * D) },
      })
    ).score.data as Float32Array;
    // Reference: standardise in float64, whiten with the float64 W_z of the fit.
    for (let n = 0; n < N; n++) {
      let best = Infinity;
      for (let k = 0; k < 3; k++) {
        let d2 = 0;
        for (let i = 0; i < dim; i++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) {
            const zj = (f[n * dim + j] - mean[j]) / sd[j];
            acc += gz.whiten[i * dim + j] * (zj - gz.means[k * dim + j]);
          }
          d2 += acc * acc;
        }
        best = Math.min(best, d2);
      }
      // float32 whitening of a dim-D vector: relative error ~ D·ε·cond; 2e-3 relative is loose
      // enough for that and far below the spread of scores between images.
      expect(Math.abs(score[n] + best)).toBeLessThan(2e-3 * best + 1e-3);
    }
  });
});
