import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readManifest } from '../model-dir/io';
import { tinyDataset } from '../testing/tiny-data';
import { TrainingAborted } from '../training/common';
import { RECIPES, Recipe, recipeNamed, smokeRecipe } from './definitions';
import {
  RESULTS_FILE,
  RecipeResults,
  RunRecipeOptions,
  StageEvent,
  carveValidation,
  chooseCandidate,
  runRecipe,
} from './run';

const root = fs.mkdtemp(join(tmpdir(), 'prg-recipe-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

// The smoke recipe on synthetic 28×28 data with MNIST's class count: no dataset download, and
// the classes are easy enough that the stages' numbers are meaningful (above chance).
const smoke: Recipe = smokeRecipe(RECIPES.mnist);
const datasets = {
  train: tinyDataset({ n: 160, classes: 4, shape: [1, 28, 28], seed: 1 }),
  test: tinyDataset({ n: 64, classes: 4, shape: [1, 28, 28], seed: 2 }),
  oodValidation: tinyDataset({ n: 32, classes: 2, shape: [1, 28, 28], seed: 3 }),
};
const opts = (dir: string): RunRecipeOptions => ({
  recipe: smoke,
  dir,
  datasets,
  threads: 1,
  command: 'test',
});

describe('carveValidation', () => {
  it('splits the training set into disjoint seeded parts that cover it', () => {
    const ds = tinyDataset({ n: 50, classes: 5 });
    const a = carveValidation(ds, 10, 0);
    expect(a.validation.n).toBe(10);
    expect(a.train.n).toBe(40);
    const b = carveValidation(ds, 10, 0);
    expect(Array.from(b.validation.images)).toEqual(Array.from(a.validation.images));
    const c = carveValidation(ds, 10, 1);
    expect(Array.from(c.validation.images)).not.toEqual(Array.from(a.validation.images));
    expect(() => carveValidation(ds, 50, 0)).toThrow(/1 ≤ n < 50/);
  });

  it('chooses the best validation accuracy, the earlier one on ties', () => {
    expect(chooseCandidate([0.5, 0.9, 0.7])).toBe(1);
    expect(chooseCandidate([0.8, 0.8])).toBe(0);
  });

  it('names the recipes it knows', () => {
    expect(recipeNamed('fashion-mnist').data.test).toBe('fashion-mnist:test');
    expect(recipeNamed('mnist', true).name).toBe('mnist-smoke');
    expect(() => recipeNamed('cifar')).toThrow(/unknown recipe "cifar".*mnist, fashion-mnist/);
  });
});

describe('runRecipe (smoke)', () => {
  it('runs every stage, writes the results, and a stopped run resumes to the same result', async () => {
    const r0 = await root;
    const straight = await runRecipe(opts(join(r0, 'a')));
    expect(straight.complete).toBe(true);
    expect(Object.keys(straight.stages)).toEqual([
      'pretrain',
      'finetune-0',
      'finetune-1',
      'eval',
      'ood',
    ]);
    for (const s of Object.values(straight.stages)) {
      expect(s.done).toBe(true);
      expect(s.runs).toBe(1);
      expect(s.cpuSeconds).toBeGreaterThan(0);
    }
    expect(straight.selection?.validationAccuracy).toHaveLength(2);
    expect(straight.testAccuracy).toBeGreaterThanOrEqual(0);
    expect(straight.commit).toMatch(/^([0-9a-f]{40}|unknown)$/);
    expect(straight.machine.cpus).toBeGreaterThan(0);
    const onDisk = JSON.parse(
      await fs.readFile(join(r0, 'a', RESULTS_FILE), 'utf8'),
    ) as RecipeResults;
    expect(onDisk.testAccuracy).toBe(straight.testAccuracy);
    const chosen = join(r0, 'a', 'candidates', `${straight.selection!.chosen}`);
    const m = await readManifest(chosen);
    expect(m.metrics['accuracy:mnist:test:limit64']).toBeDefined();
    await expect(fs.stat(join(chosen, 'ood.json'))).resolves.toBeTruthy();
    // The pretrained flow is kept: a base for uploads.
    expect((await readManifest(join(r0, 'a', 'flow'))).provenance.phase).toBe('pretrain');

    // Stopped in the middle of the second candidate, then resumed.
    const dir = join(r0, 'b');
    const ctl = new AbortController();
    let inSecond = false;
    await expect(
      runRecipe({
        ...opts(dir),
        signal: ctl.signal,
        onStage: (e) => void (inSecond = e.stage === 'finetune-1' && e.status === 'start'),
        onStep: (p) => {
          if (inSecond && p.globalStep === 2) ctl.abort();
        },
      }),
    ).rejects.toBeInstanceOf(TrainingAborted);
    await expect(runRecipe(opts(dir))).rejects.toThrow(/pass resume/);
    const events: StageEvent[] = [];
    const resumed = await runRecipe({
      ...opts(dir),
      resume: true,
      onStage: (e) => void events.push(e),
    });
    expect(events.filter((e) => e.status === 'skip').map((e) => e.stage)).toEqual([
      'pretrain',
      'finetune-0',
    ]);
    expect(resumed.stages['finetune-1'].runs).toBe(2);
    expect(Object.keys(resumed.stages)).toEqual(Object.keys(straight.stages));
    // Same batches, noise and kernels (one thread): the same selection and test accuracy.
    expect(resumed.selection).toEqual(straight.selection);
    expect(resumed.testAccuracy).toBe(straight.testAccuracy);
  }, 300_000);
});
