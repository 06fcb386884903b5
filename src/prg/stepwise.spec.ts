/**
 * Stepwise inference (LoadOptions.stepwiseAbove): a large velocity net runs fixed-step solvers on
 * one shared dynamic-batch velocity session with the ODE solved in JS, instead of one unrolled
 * graph per setting. Checked on the tiny imported SiT (a DiT, the family this exists for): both
 * paths give the same features, logits, samples and trajectories, and stepwise holds two sessions
 * (velocity + post graph) whatever K and batch are asked.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main';
import { runCommand } from '../cli/testing/run-command';
import { PrgModel, STEPWISE_ABOVE, loadPrgModel, weightBytes } from './inference';

const FIX = join(__dirname, '..', '..', 'test', 'fixtures', 'import');
let root: string;
let unrolled: PrgModel;
let stepwise: PrgModel;

/**
 * Both paths evaluate the same velocity at the same (x, t) and combine the stages with the same
 * tableau, in float32 (the graph) or float32 arrays updated in JS (solveOde): the order of the
 * additions and ORT's kernel choice per batch shape differ, so results agree to float32 rounding
 * accumulated over a few steps of a net with outputs of order 1 — 1e-5, not bit-exactly.
 */
const TOL = 1e-5;

const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const latents = (n: number) =>
  Float32Array.from({ length: n * 4 * 8 * 8 }, (_, i) => Math.sin(i * 0.61) * 0.9);

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-stepwise-'));
  const dir = join(root, 'sit');
  const r = await runCommand(main, [
    'import',
    'sit',
    '--checkpoint',
    join(FIX, 'sit-tiny.safetensors'),
    '--path',
    'linear',
    '--heads',
    '4',
    '--classes',
    'a,b,c',
    '--pool',
    'none',
    '--steps',
    '2',
    // External data, loaded by reference: the serving path of SiT-XL/2.
    '--external-data-above',
    '1024',
    '--out',
    dir,
  ]);
  expect(r.err).toBe('');
  unrolled = await loadPrgModel(dir, { threads: 1, stepwiseAbove: Infinity });
  stepwise = await loadPrgModel(dir, { threads: 1, stepwiseAbove: 0 });
});
afterAll(async () => {
  await unrolled?.release();
  await stepwise?.release();
  await fs.rm(root, { recursive: true, force: true });
});

describe('stepwise inference (one velocity session for every setting)', () => {
  it('is chosen by the weight size against stepwiseAbove', () => {
    expect(unrolled.stepwise).toBe(false);
    expect(stepwise.stepwise).toBe(true);
    const bytes = weightBytes(stepwise.velocity);
    expect(bytes).toBeGreaterThan(1024);
    // The tiny net stays unrolled under the default threshold.
    expect(bytes).toBeLessThan(STEPWISE_ABOVE);
  });

  it('features and classify match the unrolled graphs for several solvers, K and batches', async () => {
    for (const [solver, steps, n, t] of [
      ['euler', 1, 1, 0.5],
      ['euler', 4, 3, 0.5],
      ['midpoint', 2, 2, 0.3],
      ['rk4', 3, 5, 0.8],
    ] as const) {
      const x = { data: latents(n), n };
      const opts = { solver, steps, t, pool: null };
      const a = await unrolled.features(x, opts);
      const b = await stepwise.features(x, opts);
      expect(b.shape).toEqual(a.shape);
      expect(maxDiff(a.data, b.data)).toBeLessThan(TOL);
      // The flow moved the input (a broken solve returning x would pass the comparison above).
      expect(maxDiff(a.data, x.data)).toBeGreaterThan(1e-3);
      const ca = await unrolled.classify(x, { solver, steps });
      const cb = await stepwise.classify(x, { solver, steps });
      expect(maxDiff(ca.logits, cb.logits)).toBeLessThan(TOL);
    }
    // Stepwise: the velocity session and one post graph per (head, pool) serve every setting.
    // Unrolled: one graph per (solver, K, t, batch bucket): six distinct ones above (features at
    // the manifest's t and pool share the classify graph).
    expect(stepwise.liveSessions).toBe(3);
    expect(unrolled.liveSessions).toBe(6);
  });

  it('samples and trajectories match the unrolled graphs', async () => {
    const s = { n: 2, seed: 7, solver: 'rk4' as const, steps: 3 };
    const a = await unrolled.sample(s);
    const b = await stepwise.sample(s);
    expect(maxDiff(a.data, b.data)).toBeLessThan(TOL);
    const img = latents(1);
    const ta = await unrolled.trajectory(img, { solver: 'euler', steps: 5, frames: 3 });
    const tb = await stepwise.trajectory(img, { solver: 'euler', steps: 5, frames: 3 });
    expect(tb.shape).toEqual([3, 4, 8, 8]);
    expect(maxDiff(ta.data, tb.data)).toBeLessThan(TOL);
  });
});
