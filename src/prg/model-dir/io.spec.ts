import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTinyModel } from '../testing/tiny-model';
import { readModelDir, readManifest, writeModelDir } from './io';

const root = fs.mkdtemp(join(tmpdir(), 'prg-modeldir-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

describe('model directory', () => {
  it('writes a tiny model and reads it back with both graphs cross-checked', async () => {
    const dir = join(await root, 'a');
    const { manifest } = await createTinyModel(dir, { classes: 4, inputShape: [1, 8, 8] });
    const m = await readModelDir(dir);
    expect(m.manifest).toEqual(manifest);
    expect(m.velocity.inputs.map((i) => i.name)).toEqual(['x', 't']);
    expect(m.head.outputs[0].shape).toEqual(['N', 4]);
    // No temp directories are left beside it.
    const left = (await fs.readdir(await root)).filter((f) => f.startsWith('.'));
    expect(left).toEqual([]);
  });

  it('refuses to overwrite unless asked, then replaces atomically', async () => {
    const dir = join(await root, 'b');
    await createTinyModel(dir, { classes: 3 });
    await expect(createTinyModel(dir, { classes: 3 })).rejects.toThrow(/already exists/);
    await createTinyModel(dir, { classes: 5, overwrite: true });
    expect((await readManifest(dir)).classes).toHaveLength(5);
  });

  it('keeps files beside the model (README, notes) when it replaces the directory', async () => {
    const dir = join(await root, 'keep');
    await createTinyModel(dir, { classes: 3 });
    await fs.writeFile(join(dir, 'README.md'), '# how this model was made\n');
    const m = await readModelDir(dir);
    await writeModelDir(dir, m, { overwrite: true });
    expect(await fs.readFile(join(dir, 'README.md'), 'utf8')).toBe('# how this model was made\n');
    expect((await fs.readdir(dir)).sort()).toEqual(
      ['README.md', 'head.onnx', 'manifest.json', 'velocity.onnx'].sort(),
    );
  });

  it('names the manifest file and its bad field when reading', async () => {
    const dir = join(await root, 'c');
    const { manifest } = await createTinyModel(dir);
    const p = join(dir, 'manifest.json');
    await fs.writeFile(p, JSON.stringify({ ...manifest, interpolant: 'ddpm' }));
    await expect(readModelDir(dir)).rejects.toThrow(/manifest\.json: field interpolant/);
  });

  it('reports a graph that does not fit the manifest, naming the file', async () => {
    const dir = join(await root, 'd');
    const { manifest } = await createTinyModel(dir, { classes: 3 });
    const loaded = await readModelDir(dir);
    await expect(
      writeModelDir(join(await root, 'e'), {
        ...loaded,
        manifest: { ...manifest, classes: ['a', 'b'] },
      }),
    ).rejects.toThrow(/head\.onnx: logits .* 2 classes/);
    await expect(
      writeModelDir(join(await root, 'f'), {
        ...loaded,
        manifest: { ...manifest, featurePool: 2 },
      }),
    ).rejects.toThrow(/features has shape/);
    await fs.writeFile(join(dir, 'velocity.onnx'), 'garbage');
    await expect(readModelDir(dir)).rejects.toThrow(/velocity\.onnx: not a valid ONNX model/);
  });
});
