import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyDataset } from '../testing/tiny-data';
import { TrainingAborted } from '../training/common';
import { AblationResults, RunAblationOptions, checkAblation, meanStd, runAblation } from './ablate';
import { ABLATIONS, AblationRecipe, BUDGET, smokeAblation } from './ablations';
import { RESULTS_FILE, StageEvent } from './run';
import { canonicalJson, unitId, UNIT_CHECKPOINT_DIR } from './units';

const root = fs.mkdtemp(join(tmpdir(), 'prg-ablate-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

// Synthetic 28×28 data with MNIST's shape (no download); smoke numbers mean nothing.
const datasets = {
  train: tinyDataset({ n: 160, classes: 4, shape: [1, 28, 28], seed: 1 }),
  test: tinyDataset({ n: 64, classes: 4, shape: [1, 28, 28], seed: 2 }),
};
const opts = (recipe: AblationRecipe, dir: string, units: string): RunAblationOptions => ({
  recipe,
  dir,
  unitsDir: units,
  datasets,
  threads: 1,
  command: 'test',
});

describe('ablation recipes', () => {
  it('cover every question on both datasets, each valid, with ≥ 2 seeds and the budget stated', () => {
    for (const q of ['flows', 'finetune', 'tstar', 'lambda', 'solver', 'supervised'])
      for (const d of ['mnist', 'fashion-mnist']) {
        const r = ABLATIONS[`ablate-${q}-${d}`];
        expect(r, `ablate-${q}-${d}`).toBeDefined();
        expect(() => checkAblation(r)).not.toThrow();
        expect(() => checkAblation(smokeAblation(r))).not.toThrow();
        expect(r.seeds.length).toBeGreaterThanOrEqual(2);
        expect(r.description).toContain(`first ${BUDGET.trainImages} training images`);
        expect(r.data.test).toBe(`${d}:test`);
      }
    expect(ABLATIONS['ablate-tstar-mnist'].variants.map((v) => v.name)).toEqual([
      'tstar-0.25',
      'prg',
      'tstar-0.75',
      'tstar-1',
    ]);
    const bad = { ...ABLATIONS['ablate-solver-mnist'] };
    bad.variants = bad.variants.filter((v) => v.name !== 'prg');
    expect(() => checkAblation(bad)).toThrow(/no reference variant prg/);
  });

  it('mean ± sample std; one seed has no std', () => {
    const m = meanStd([0.9, 0.8])!;
    expect(m.mean).toBeCloseTo(0.85, 12);
    expect(m.std).toBeCloseTo(Math.sqrt(0.005), 12);
    expect(m.n).toBe(2);
    expect(meanStd([0.5])).toEqual({ mean: 0.5, std: null, n: 1 });
    expect(meanStd([])).toBeNull();
  });

  it('names a unit by its settings whatever their key order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: undefined }] })).toBe('{"a":[{"d":2}],"b":1}');
    expect(unitId('x', { a: 1, b: 2 })).toBe(unitId('x', { b: 2, a: 1 }));
    expect(unitId('x', { a: 1 })).not.toBe(unitId('x', { a: 2 }));
  });
});

describe('runAblation (smoke)', () => {
  it('runs λ ∈ {0, 1} over two seeds, then shares its units with the solver and supervised ablations', async () => {
    const r0 = await root;
    const units = join(r0, 'units');
    const lambda = await runAblation(
      opts(smokeAblation(ABLATIONS['ablate-lambda-mnist']), join(r0, 'lambda'), units),
    );
    expect(lambda.complete).toBe(true);
    const onDisk = JSON.parse(
      await fs.readFile(join(r0, 'lambda', RESULTS_FILE), 'utf8'),
    ) as AblationResults;
    // The recipes' results shape (recipe, version, commit, machine, command, settings, stages)
    // plus the ablation block.
    for (const k of [
      'recipe',
      'version',
      'complete',
      'commit',
      'machine',
      'command',
      'settings',
      'stages',
    ])
      expect(onDisk).toHaveProperty(k);
    const a = onDisk.ablation;
    expect(a.variants.map((v) => v.name)).toEqual(['lambda-0', 'prg']);
    expect(a.budget.testImages).toBe(64);
    for (const v of a.variants) {
      expect(v.runs.map((x) => x.seed)).toEqual([0, 1]);
      for (const x of v.runs) {
        expect(x.testAccuracy).toBeGreaterThanOrEqual(0);
        expect(x.testAccuracy).toBeLessThanOrEqual(1);
        expect(x.validationAccuracy).toHaveLength(2);
        expect(x.chosen).toBe(x.validationAccuracy![1] > x.validationAccuracy![0] ? 1 : 0);
      }
      expect(v.testAccuracy).toEqual(meanStd(v.runs.map((x) => x.testAccuracy)));
    }
    // One pretrain per seed, shared by both variants.
    expect(Object.keys(a.pretrain)).toEqual(['icfm/seed0', 'icfm/seed1']);
    expect(lambda.stages['seed0/prg/candidate-0'].reused).toBe(false);
    // The two seeds are different runs.
    expect(lambda.stages['seed0/pretrain-icfm'].unit).not.toBe(
      lambda.stages['seed1/pretrain-icfm'].unit,
    );

    const events: StageEvent[] = [];
    const solver = await runAblation({
      // One seed here (seed 0, trained above): the aggregation over seeds is checked above.
      ...opts(
        { ...smokeAblation(ABLATIONS['ablate-solver-mnist']), seeds: [0] },
        join(r0, 'solver'),
        units,
      ),
      onStage: (e) => void events.push(e),
    });
    const prg = (res: AblationResults) => res.ablation.variants.find((v) => v.name === 'prg')!;
    // The reference was trained by the λ ablation: every one of its stages is reused.
    expect(prg(solver).runs).toEqual(prg(lambda).runs.filter((x) => x.seed === 0));
    expect(solver.stages['seed0/prg/test'].reused).toBe(true);
    expect(events.find((e) => e.stage === 'seed0/prg/candidate-1')?.status).toBe('skip');
    const names = solver.ablation.variants.map((v) => v.name);
    expect(names).toEqual([
      'prg',
      'euler-1',
      'euler-2',
      'euler-3',
      'euler-5',
      'euler-10',
      'euler-20',
      'midpoint-3',
      'rk4-3',
      'dopri5',
    ]);
    // Euler with K = 3 is the setting the model was trained and tested with: the same unit.
    expect(solver.stages['seed0/euler-3/test'].unit).toBe(solver.stages['seed0/prg/test'].unit);
    expect(solver.stages['seed0/euler-20/test'].unit).not.toBe(
      solver.stages['seed0/prg/test'].unit,
    );
    for (const v of solver.ablation.variants) expect(v.testAccuracy?.n).toBe(1);

    const sup = await runAblation(
      opts(
        { ...smokeAblation(ABLATIONS['ablate-supervised-mnist']), seeds: [0] },
        join(r0, 'supervised'),
        units,
      ),
    );
    const s = sup.ablation.variants.find((v) => v.name === 'supervised')!;
    expect(s.testAccuracy?.n).toBe(1);
    expect(s.settings).toEqual({
      interpolant: 'icfm',
      pretrained: false,
      finetune: { steps: 1, tStar: 1, lambdaFlow: 0, solver: 'euler' },
    });
    expect(sup.stages['seed0/supervised/candidate-0'].reused).toBe(false);
    expect(sup.stages['seed0/prg/candidate-0'].reused).toBe(true);
  }, 600_000);

  it('stops inside a unit and resumes to the result of an uninterrupted run', async () => {
    const r0 = await root;
    const base = smokeAblation(ABLATIONS['ablate-finetune-mnist']);
    // Only the frozen-flow variant and the reference, one seed: enough to stop and resume.
    const recipe: AblationRecipe = {
      ...base,
      seeds: [0],
      variants: base.variants.filter((v) => v.name !== 'scratch'),
    };
    const straight = await runAblation(opts(recipe, join(r0, 'a'), join(r0, 'units-a')));
    const dir = join(r0, 'b');
    const ctl = new AbortController();
    let inFrozen = false;
    await expect(
      runAblation({
        ...opts(recipe, dir, join(r0, 'units-b')),
        signal: ctl.signal,
        onStage: (e) =>
          void (inFrozen = e.stage === 'seed0/frozen/candidate-1' && e.status === 'start'),
        onStep: (p) => {
          if (inFrozen && p.globalStep === 2) ctl.abort();
        },
      }),
    ).rejects.toBeInstanceOf(TrainingAborted);
    await expect(runAblation(opts(recipe, dir, join(r0, 'units-b')))).rejects.toThrow(
      /pass resume/,
    );
    const state = JSON.parse(await fs.readFile(join(dir, 'state.json'), 'utf8'));
    expect(state.stages['seed0/frozen/candidate-1'].done).toBe(false);
    const unitDir = join(
      r0,
      'units-b',
      (await fs.readdir(join(r0, 'units-b'))).find((n) => n.startsWith('finetune-frozen-s0-c1-'))!,
    );
    const checkpoints = join(unitDir, UNIT_CHECKPOINT_DIR);
    expect((await fs.readdir(checkpoints)).length).toBeGreaterThan(0);
    const resumed = await runAblation({ ...opts(recipe, dir, join(r0, 'units-b')), resume: true });
    expect(resumed.stages['seed0/frozen/candidate-1'].runs).toBe(2);
    expect(resumed.stages['seed0/pretrain-icfm'].runs).toBe(1);
    // Done: the model stays, the checkpoint that got it there is removed.
    await expect(fs.access(join(unitDir, 'model', 'manifest.json'))).resolves.toBeUndefined();
    await expect(fs.access(checkpoints)).rejects.toThrow();
    // Same batches, noise and kernels (one thread): the same numbers.
    const strip = (r: AblationResults) =>
      r.ablation.variants.map((v) => ({
        ...v,
        runs: v.runs.map((x) => ({ ...x, cpuSeconds: 0 })),
      }));
    expect(strip(resumed)).toEqual(strip(straight));
  }, 600_000);
});
