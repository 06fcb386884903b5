import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPrgModel } from '../inference';
import { readModelDir } from '../model-dir/io';
import { TINY_UNET } from '../testing/tiny-model';
import { tinyDataset } from '../testing/tiny-data';
import { TrainingAborted } from './common';
import { PretrainOptions, pretrain } from './pretrain';

const root = fs.mkdtemp(join(tmpdir(), 'prg-pretrain-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

const base = (dir: string): PretrainOptions => ({
  data: 'tiny',
  dataset: tinyDataset({ n: 16, classes: 2 }),
  out: join(dir, 'model'),
  checkpointDir: join(dir, 'ckpt'),
  net: { kind: 'unet', preset: 'XS', overrides: { ...TINY_UNET } },
  interpolant: 'otcfm',
  epochs: 2,
  batchSize: 4,
  lr: 1e-3,
  checkpointEvery: 3,
  threads: 1,
  head: { kind: 'mlp', hidden: 8, featurePool: 4 },
  solver: { name: 'euler', steps: 2, tStar: 0.5 },
});

describe('pretrain', () => {
  it('trains a tiny flow, writes a loadable model, and a resumed run matches an uninterrupted one', async () => {
    const r0 = await root;
    const epochsA: number[] = [];
    const a = await pretrain({
      ...base(join(r0, 'a')),
      onEpoch: (p) => void epochsA.push(p.meanLoss),
    });
    expect(a.steps).toBe(8);
    expect(Number.isFinite(a.finalLoss)).toBe(true);
    const model = await loadPrgModel(a.modelDir, { threads: 1 });
    const out = await model.classify({ data: new Float32Array(2 * 64), n: 2 });
    expect(out.probabilities).toHaveLength(4);
    expect(model.manifest.provenance.dataset).toBe('tiny');
    expect(model.manifest.interpolant).toBe('otcfm');
    await model.release();

    // Interrupted after 5 steps (signal), then resumed: same weights as the straight run.
    const ctl = new AbortController();
    const opts = base(join(r0, 'b'));
    await expect(
      pretrain({
        ...opts,
        signal: ctl.signal,
        onStep: (p) => {
          if (p.globalStep === 5) ctl.abort();
        },
      }),
    ).rejects.toBeInstanceOf(TrainingAborted);
    await expect(pretrain(opts)).rejects.toThrow(/pass resume/);
    const epochsB: number[] = [];
    const b = await pretrain({
      ...opts,
      resume: true,
      onEpoch: (p) => void epochsB.push(p.meanLoss),
    });
    // Epoch 1 was split by the abort; its mean loss still covers all four of its steps.
    expect(epochsB).toHaveLength(1);
    expect(epochsB[0]).toBeCloseTo(epochsA[1], 5);
    expect(b.resumedFromStep).toBe(5);
    expect(b.steps).toBe(8);
    const ga = (await readModelDir(a.modelDir)).velocity.initializers;
    const gb = (await readModelDir(b.modelDir)).velocity.initializers;
    // Same batches, noise and ORT kernels (1 thread): the weights agree to float32 rounding.
    for (const [k, t] of ga) {
      if (t.dtype !== 'float32') continue;
      const u = gb.get(k)!;
      const x = t.data as Float32Array;
      const y = u.data as Float32Array;
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i])).toBeLessThan(1e-6);
    }
  });
});
