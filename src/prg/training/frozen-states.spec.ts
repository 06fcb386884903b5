import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../rng';
import { createTinyModel } from '../testing/tiny-model';
import { smoothTargets } from './common';
import { TINY_STEP_BATCH as B, tinyFineTuneStep } from '../testing/tiny-step';
import { FineTuneBatch } from './finetune';
import { RowCache } from './row-cache';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-frozen-states-'));
  await createTinyModel(join(root, 'm'), { classes: 3, inputShape: [1, 8, 8], featurePool: 4 });
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

const D = 64;
function batch(seed: number, indices: number[]): FineTuneBatch {
  return {
    x: new Rng(seed).fillNormal(new Float32Array(B * D), 0, 0.5),
    target: smoothTargets(Int32Array.from([0, 2]), 3, 0.1),
    indices: Int32Array.from(indices),
  };
}

const frozenStep = (cacheFrozenStates: boolean) =>
  tinyFineTuneStep(
    join(root, 'm'),
    { solver: 'midpoint', mode: 'adjoint', freezeFlow: true, lambdaFlow: 0 },
    { cacheFrozenStates },
  );

describe('the frozen flow x_K cache (head-only fine-tuning)', () => {
  it('a cached batch gives the uncached loss and gradients, and is not solved again', async () => {
    const cached = await frozenStep(true);
    const plain = await frozenStep(false);
    try {
      const first = await cached.step.run(cached.params, batch(1, [4, 9]), [1, 8, 8]);
      const ref = await plain.step.run(plain.params, batch(1, [4, 9]), [1, 8, 8]);
      expect(first.loss).toBe(ref.loss);
      expect(cached.step.frozenStates!.size).toBe(2);
      // Same indices, other pixels: the cache answers, so the loss is that of the first images.
      // (Only valid because a frozen, unaugmented run never changes an index's pixels.)
      const again = await cached.step.run(cached.params, batch(2, [4, 9]), [1, 8, 8]);
      expect(again.loss).toBe(first.loss);
      for (const [name, g] of ref.grads) expect(again.grads.get(name)).toEqual(g);
      // The uncached step does see the other pixels.
      const other = await plain.step.run(plain.params, batch(2, [4, 9]), [1, 8, 8]);
      expect(other.loss).not.toBe(ref.loss);
      // One new index in the batch: the whole batch is solved from its pixels.
      const mixed = await cached.step.run(cached.params, batch(2, [4, 11]), [1, 8, 8]);
      expect(mixed.loss).toBe(other.loss);
      expect(cached.step.frozenStates!.size).toBe(3);
      expect(cached.step.frozenStates!.hits).toBe(2);
    } finally {
      await cached.step.release();
      await plain.step.release();
    }
  });

  it('a frozen flow in direct mode takes the cached adjoint path with the same loss and gradients', async () => {
    const dir = join(root, 'm');
    const direct = {
      solver: 'midpoint' as const,
      mode: 'direct' as const,
      freezeFlow: true,
      lambdaFlow: 0,
    };
    const cached = await tinyFineTuneStep(dir, direct, { cacheFrozenStates: true });
    const plain = await tinyFineTuneStep(dir, direct, { cacheFrozenStates: false });
    try {
      expect(cached.step.frozenStates).toBeDefined();
      expect(plain.step.frozenStates).toBeUndefined();
      const a = await cached.step.run(cached.params, batch(3, [1, 2]), [1, 8, 8]);
      const b = await plain.step.run(plain.params, batch(3, [1, 2]), [1, 8, 8]);
      // The same float32 arithmetic in another order (one graph vs one session per step): agree
      // to a few ulps of the loss's magnitude, not bit for bit.
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * Math.abs(b.loss));
      expect([...a.grads.keys()].sort()).toEqual([...b.grads.keys()].sort());
      for (const [name, g] of b.grads) {
        const h = a.grads.get(name)!;
        const scale = Math.max(1e-6, ...g.map(Math.abs));
        for (let i = 0; i < g.length; i++) expect(Math.abs(h[i] - g[i])).toBeLessThan(1e-4 * scale);
      }
      await cached.step.run(cached.params, batch(3, [1, 2]), [1, 8, 8]);
      expect(cached.step.frozenStates!.hits).toBe(2);
    } finally {
      await cached.step.release();
      await plain.step.release();
    }
  });

  it('is off unless asked for', async () => {
    const { step } = await frozenStep(false);
    expect(step.frozenStates).toBeUndefined();
    await step.release();
  });
});

describe('RowCache', () => {
  it('stops storing at its byte budget and copies what it keeps', () => {
    const c = new RowCache(4, 2 * 16);
    const data = Float32Array.from({ length: 12 }, (_, i) => i);
    c.setBatch([7, 8, 9], data);
    expect(c.size).toBe(2);
    data.fill(-1);
    expect([...c.get(8)!]).toEqual([4, 5, 6, 7]);
    expect(c.get(9)).toBeUndefined();
    expect(c.gather([7, 8])).toEqual(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]));
    expect(c.gather([7, 9])).toBeUndefined();
    expect(() => c.set(1, new Float32Array(3))).toThrow(/3 floats, expected 4/);
  });
});
