import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGraph } from '../engine/runtime/session';
import { PrgModel, loadPrgModel } from './inference';
import { createTinyModel } from './testing/tiny-model';

let root: string;
let model: PrgModel;
const C = 1;
const H = 8;
const W = 8;
const n = 3;
const image = new Float32Array(n * C * H * W).map((_, i) => Math.sin(i * 0.37) * 0.9);

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-inf-'));
  await createTinyModel(join(root, 'm'), { classes: 4, inputShape: [C, H, W] });
  model = await loadPrgModel(join(root, 'm'), { threads: 1 });
});
afterAll(async () => {
  await model?.release();
  await fs.rm(root, { recursive: true, force: true });
});

/** Reference: Euler steps with the velocity net run one call at a time. */
async function eulerReference(x0: Float32Array, steps: number, tStar: number) {
  const x = Float32Array.from(x0);
  const h = tStar / steps;
  for (let k = 0; k < steps; k++) {
    const t = new Float32Array(n).fill(k * h);
    const out = await runGraph(
      model.velocity,
      {
        x: { dtype: 'float32', dims: [n, C, H, W], data: x },
        t: { dtype: 'float32', dims: [n], data: t },
      },
      { threads: 1 },
    );
    const v = out.v.data as Float32Array;
    for (let i = 0; i < x.length; i++) x[i] += h * v[i];
  }
  return x;
}

describe('loadPrgModel', () => {
  it('classifies: the unrolled Euler graph matches step-by-step Euler + head', async () => {
    const { solver } = model.manifest;
    const out = await model.classify({ data: image, n });
    expect(out.classes).toBe(4);
    expect(out.logits).toHaveLength(n * 4);
    for (let i = 0; i < n; i++) {
      const s = out.probabilities.slice(i * 4, i * 4 + 4).reduce((a, b) => a + b, 0);
      expect(s).toBeCloseTo(1, 5);
    }
    const xt = await eulerReference(image, solver.steps, solver.tStar);
    const ref = await runGraph(model.head, {
      features: { dtype: 'float32', dims: [n, C * H * W], data: xt },
    });
    const want = ref.logits.data as Float32Array;
    // float32: the same ops in a different graph layout differ by a few ulps per op.
    for (let i = 0; i < want.length; i++) expect(out.logits[i]).toBeCloseTo(want[i], 4);
    const feats = await model.features({ data: image, n });
    expect(feats.shape).toEqual([n, C * H * W]);
    for (let i = 0; i < xt.length; i++) expect(feats.data[i]).toBeCloseTo(xt[i], 4);
  });

  it('pools features and honours t/steps/solver options', async () => {
    const f = await model.features({ data: image, n }, { pool: 2, t: 0.3, steps: 2 });
    expect(f.shape).toEqual([n, C * 2 * 2]);
    const full = await model.features({ data: image, n }, { t: 0.3, steps: 2, pool: null });
    // Pool 2 on 8×8 averages 4×4 blocks of x_t.
    let s = 0;
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) s += full.data[y * W + x];
    expect(f.data[0]).toBeCloseTo(s / 16, 5);
  });

  it('dopri5 (numeric, adaptive) agrees with the unrolled RK4 graph', async () => {
    const a = await model.classify({ data: image, n }, { solver: 'dopri5', steps: 2 });
    const b = await model.classify({ data: image, n }, { solver: 'rk4', steps: 8 });
    // Both are accurate to ~1e-4 of the same ODE solution (dopri5 rtol = atol = 1e-5).
    for (let i = 0; i < a.logits.length; i++) expect(a.logits[i]).toBeCloseTo(b.logits[i], 3);
  });

  it('trajectory: frames from the image to t = 1; OOD scores msp and energy', async () => {
    const one = image.slice(0, C * H * W);
    const tr = await model.trajectory(one, { frames: 3, steps: 4 });
    expect(tr.shape).toEqual([3, C, H, W]);
    expect(Array.from(tr.data.slice(0, 64))).toEqual(Array.from(one));
    const mid = await model.features({ data: one, n: 1 }, { t: 0.5, steps: 2, pool: null });
    for (let i = 0; i < 64; i++) expect(tr.data[64 + i]).toBeCloseTo(mid.data[i], 4);
    const scores = await model.oodScores({ data: image, n });
    const cls = await model.classify({ data: image, n });
    expect(Object.keys(scores)).toEqual(['msp', 'energy']);
    for (let i = 0; i < n; i++) {
      const p = cls.probabilities.slice(i * 4, i * 4 + 4);
      expect(scores.msp[i]).toBeCloseTo(Math.max(...p), 6);
      const l = cls.logits.slice(i * 4, i * 4 + 4);
      expect(scores.energy[i]).toBeCloseTo(Math.log(l.reduce((s, v) => s + Math.exp(v), 0)), 4);
    }
    expect(cls.ood).toBeUndefined();
    // Scores asked of classify come from the same pass and equal oodScores'; unknown names are
    // absent rather than invented.
    const withOod = await model.classify({ data: image, n }, { ood: ['energy', 'mahalanobis'] });
    expect(Object.keys(withOod.ood!)).toEqual(['energy']);
    expect(Array.from(withOod.ood!.energy)).toEqual(Array.from(scores.energy));
    expect(Array.from(withOod.probabilities)).toEqual(Array.from(cls.probabilities));
  });

  it('rejects bad batches and options with clear errors', async () => {
    await expect(model.classify({ data: new Float32Array(10), n: 1 })).rejects.toThrow(
      /10 values for n=1 images of 1×8×8/,
    );
    await expect(model.classify({ data: image, n }, { steps: 0 })).rejects.toThrow(/steps=0/);
    await expect(model.features({ data: image, n }, { t: 1.5 })).rejects.toThrow(/t range/);
    await expect(model.features({ data: image, n }, { pool: 9 })).rejects.toThrow(/pool=9/);
  });
});
