import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedSolverName } from '../features';
import { Rng } from '../rng';
import { createTinyModel } from '../testing/tiny-model';
import { smoothTargets } from './common';
import { TINY_STEP_BATCH as B, tinyFineTuneStep } from '../testing/tiny-step';
import { FineTuneBatch } from './finetune';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-grads-'));
  await createTinyModel(join(root, 'm'), { classes: 3, inputShape: [1, 8, 8], featurePool: 4 });
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

function batch(): FineTuneBatch {
  const rng = new Rng(7);
  const d = B * 64;
  return {
    x: rng.fillNormal(new Float32Array(d), 0, 0.5),
    target: smoothTargets(Int32Array.from([0, 2]), 3, 0.1),
    fm: {
      xt: rng.fillNormal(new Float32Array(d)),
      t: Float32Array.from([0.2, 0.7]),
      ut: rng.fillNormal(new Float32Array(d)),
    },
  };
}

async function gradsOf(mode: 'direct' | 'adjoint', solver: FixedSolverName, freezeFlow = false) {
  const { step, params } = await tinyFineTuneStep(join(root, 'm'), {
    solver,
    mode,
    freezeFlow,
    lambdaFlow: freezeFlow ? 0 : 0.5,
  });
  try {
    return await step.run(params, batch(), [1, 8, 8]);
  } finally {
    await step.release();
  }
}

describe('fine-tuning gradients through the solver', () => {
  for (const solver of ['euler', 'midpoint'] as const)
    it(`direct and adjoint modes agree (${solver}, K=3, λ=0.5)`, async () => {
      const a = await gradsOf('direct', solver);
      const b = await gradsOf('adjoint', solver);
      expect(b.loss).toBeCloseTo(a.loss, 5);
      expect(b.ce).toBeCloseTo(a.ce, 5);
      expect([...b.grads.keys()].sort()).toEqual([...a.grads.keys()].sort());
      expect(a.grads.size).toBeGreaterThan(20);
      let nonzero = 0;
      for (const [name, ga] of a.grads) {
        const gb = b.grads.get(name)!;
        let scale = 0;
        let diff = 0;
        for (let i = 0; i < ga.length; i++) {
          scale = Math.max(scale, Math.abs(ga[i]));
          diff = Math.max(diff, Math.abs(ga[i] - gb[i]));
        }
        if (scale > 0) nonzero++;
        // Same float32 arithmetic summed in a different order (per step vs. one graph): the
        // tolerance is 1e-4 of the tensor's largest gradient plus 1e-7 absolute.
        expect(diff, name).toBeLessThanOrEqual(1e-4 * scale + 1e-7);
      }
      expect(nonzero).toBeGreaterThan(a.grads.size / 2);
    });

  it('direct-mode gradients match central finite differences of the loss', async () => {
    const { step, params } = await tinyFineTuneStep(join(root, 'm'), {
      solver: 'midpoint',
      mode: 'direct',
    });
    try {
      const bt = batch();
      const g = await step.run(params, bt, [1, 8, 8]);
      // The three largest-gradient entries of a head tensor and of two velocity tensors.
      for (const name of ['head.fc1.weight', 'out.conv.weight', 'down.0.res.0.conv1.weight']) {
        const gv = g.grads.get(name)!;
        const idx = [...gv.keys()].sort((a, b) => Math.abs(gv[b]) - Math.abs(gv[a])).slice(0, 3);
        for (const i of idx) {
          const w = params.get(name).data;
          const w0 = w[i];
          const eps = 1e-2;
          w[i] = w0 + eps;
          const up = (await step.run(params, bt, [1, 8, 8])).loss;
          w[i] = w0 - eps;
          const down = (await step.run(params, bt, [1, 8, 8])).loss;
          w[i] = w0;
          const fd = (up - down) / (2 * eps);
          // float32 loss (~1e-7 relative) over 2·eps gives ~1e-5 noise; O(eps²) truncation:
          // allow 5% of the gradient plus 1e-3.
          expect(Math.abs(fd - gv[i]), `${name}[${i}] fd ${fd} vs ${gv[i]}`).toBeLessThan(
            0.05 * Math.abs(gv[i]) + 1e-3,
          );
        }
      }
    } finally {
      await step.release();
    }
  });

  it('freezeFlow trains only the head', async () => {
    const a = await gradsOf('direct', 'euler', true);
    const b = await gradsOf('adjoint', 'euler', true);
    expect([...a.grads.keys()].every((k) => k.startsWith('head.'))).toBe(true);
    for (const [name, ga] of a.grads) {
      const gb = b.grads.get(name)!;
      for (let i = 0; i < ga.length; i++) expect(gb[i]).toBeCloseTo(ga[i], 5);
    }
  });
});
