import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelDir } from '../model-dir/io';
import { TINY_UNET, createTinyModel } from '../testing/tiny-model';
import { tinyDataset } from '../testing/tiny-data';
import { pretrain } from '../training/pretrain';
import { baseFlowModelName, exportBaseFlow, exportRecipeFlow } from './base-flow';
import { RECIPES } from './definitions';

const root = fs.mkdtemp(join(tmpdir(), 'prg-base-flow-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

/** A recipe-like run directory: a two-step tiny pretraining in flow/ and a state saying so. */
async function tinyRun(dir: string, pretrainDone: boolean) {
  await pretrain({
    data: 'tiny:train',
    dataset: tinyDataset({ n: 16, classes: 3 }),
    out: join(dir, 'flow'),
    checkpointDir: join(dir, 'ckpt'),
    net: { kind: 'unet', preset: 'XS', overrides: { ...TINY_UNET } },
    interpolant: 'icfm',
    epochs: 1,
    batchSize: 8,
    lr: 1e-3,
    threads: 1,
    head: { kind: 'mlp', hidden: 8, featurePool: 4 },
    solver: { name: 'euler', steps: 2, tStar: 0.5 },
    name: 'tiny-flow',
    version: '1',
  });
  await fs.writeFile(
    join(dir, 'state.json'),
    JSON.stringify({ recipe: 'tiny', version: 1, stages: { pretrain: { done: pretrainDone } } }),
  );
}

const tinyRecipe = {
  ...RECIPES.mnist,
  name: 'tiny',
  data: { ...RECIPES.mnist.data, train: 'tiny:train' },
};

describe('base flows', () => {
  it('exports a finished pretraining as flow-<dataset> with the same weights and an untrained head', async () => {
    const r0 = await root;
    expect(baseFlowModelName(RECIPES['fashion-mnist'])).toBe('flow-fashion-mnist');
    await tinyRun(join(r0, 'run'), true);
    const out = await exportRecipeFlow(tinyRecipe, join(r0, 'run'), {
      out: join(r0, 'models', 'flow-tiny'),
    });
    const src = await readModelDir(join(r0, 'run', 'flow'));
    const got = await readModelDir(out);
    expect(got.manifest.name).toBe('flow-tiny');
    expect(got.manifest.provenance.phase).toBe('pretrain');
    expect(got.manifest.description).toMatch(/EMA weights of icfm flow matching on tiny:train/);
    for (const [k, t] of src.velocity.initializers)
      expect(Array.from(got.velocity.initializers.get(k)!.data as Float32Array)).toEqual(
        Array.from(t.data as Float32Array),
      );
    expect([...got.head.initializers.keys()]).toEqual([...src.head.initializers.keys()]);
    // A second export refuses to replace it unless asked.
    await expect(exportRecipeFlow(tinyRecipe, join(r0, 'run'), { out })).rejects.toThrow(/exists/);
    await expect(
      exportRecipeFlow(tinyRecipe, join(r0, 'run'), { out, overwrite: true }),
    ).resolves.toBe(out);
  }, 120_000);

  it('refuses an unfinished pretraining and a model that is not a pretrained flow', async () => {
    const r0 = await root;
    await tinyRun(join(r0, 'half'), false);
    await expect(exportRecipeFlow(tinyRecipe, join(r0, 'half'))).rejects.toThrow(
      /pretrain stage is not finished/,
    );
    await expect(exportRecipeFlow(tinyRecipe, join(r0, 'none'))).rejects.toThrow(/no state.json/);
    const ft = await createTinyModel(join(r0, 'classifier'));
    await expect(
      exportBaseFlow({ flowDir: ft.dir, out: join(r0, 'x'), name: 'flow-x' }),
    ).rejects.toThrow(/not a pretrained flow.*phase null/);
  }, 120_000);
});
