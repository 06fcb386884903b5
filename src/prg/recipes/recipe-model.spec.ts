import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelDir, updateManifest } from '../model-dir/io';
import { createTinyModel } from '../testing/tiny-model';
import { RECIPES } from './definitions';
import { exportRecipeModel, nextVersion, recipeModelName } from './recipe-model';

const root = fs.mkdtemp(join(tmpdir(), 'prg-recipe-model-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

const tinyRecipe = {
  ...RECIPES.mnist,
  name: 'tiny',
  data: { ...RECIPES.mnist.data, train: 'tiny:train', test: 'tiny:test' },
};

/** A run directory as runRecipe leaves it: two candidates, results saying which one won. */
async function tinyRun(dir: string, complete: boolean): Promise<void> {
  for (const i of [0, 1]) {
    const c = join(dir, 'candidates', `${i}`);
    await createTinyModel(c, { seed: 10 + i });
    await updateManifest(c, (m) => ({
      ...m,
      metrics: {
        'accuracy:tiny:test': {
          value: 0.5 + i / 4,
          command: 'npx prg recipe run tiny',
          data: 'tiny:test',
          n: 4,
          measuredAt: '2026-12-05T00:00:00Z',
        },
      },
    }));
  }
  const results = {
    recipe: 'tiny',
    version: tinyRecipe.version,
    complete,
    commit: 'abc123',
    settings: tinyRecipe,
    stages: {},
    ...(complete
      ? {
          selection: { validationAccuracy: [0.6, 0.7], chosen: 1, rule: 'highest validation' },
          testAccuracy: 0.75,
        }
      : {}),
  };
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(join(dir, 'results.json'), JSON.stringify(results));
}

describe('exportRecipeModel', () => {
  it('ships the chosen candidate as prg-<dataset>, counting the version up, keeping its README', async () => {
    const r0 = await root;
    const run = join(r0, 'run');
    const out = join(r0, 'models', 'prg-tiny');
    await tinyRun(run, true);
    expect(recipeModelName(RECIPES['fashion-mnist'])).toBe('prg-fashion-mnist');

    const first = await exportRecipeModel(tinyRecipe, run, { out });
    expect(first).toMatchObject({ name: 'prg-tiny', version: '1', chosen: 1 });
    const got = await readModelDir(out);
    const src = await readModelDir(join(run, 'candidates', '1'));
    expect(got.manifest.provenance.recipe).toMatchObject({ name: 'tiny', chosen: 1 });
    expect(got.manifest.metrics['accuracy:tiny:test'].value).toBe(0.75);
    expect(got.manifest.description).toMatch(/candidate 1 .* test accuracy 0\.7500/);
    for (const [k, t] of src.velocity.initializers)
      expect(got.velocity.initializers.get(k)!.data).toEqual(t.data);

    await fs.writeFile(join(out, 'README.md'), 'how it was trained\n');
    await expect(exportRecipeModel(tinyRecipe, run, { out })).rejects.toThrow(
      /already holds prg-tiny@1: pass --force/,
    );
    const second = await exportRecipeModel(tinyRecipe, run, { out, overwrite: true });
    expect(second.version).toBe('2');
    expect(await fs.readFile(join(out, 'README.md'), 'utf8')).toBe('how it was trained\n');
  });

  it("refuses an incomplete run, another recipe's run, and a missing one", async () => {
    const r0 = await root;
    const run = join(r0, 'partial');
    await tinyRun(run, false);
    await expect(exportRecipeModel(tinyRecipe, run, { out: join(r0, 'x') })).rejects.toThrow(
      /not complete \(rerun it with --resume/,
    );
    await expect(exportRecipeModel(RECIPES.mnist, run)).rejects.toThrow(
      /holds recipe tiny, not mnist/,
    );
    await expect(exportRecipeModel(tinyRecipe, join(r0, 'none'))).rejects.toThrow(
      /has no results\.json: run the recipe tiny first/,
    );
  });

  it('nextVersion counts integers up and asks for anything else', () => {
    expect(nextVersion('4')).toBe('5');
    expect(nextVersion('9')).toBe('10');
    expect(() => nextVersion('1.0.0')).toThrow(/not an integer/);
  });
});
