import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTinyModel } from '../testing/tiny-model';
import { fileRefOf, isInMemory } from '../../engine/onnx/model-file';
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

describe('model directory with external data', () => {
  // Any net above 1 KiB of weights goes to <velocity>.onnx.data, as SiT-XL/2 does above 1 GiB.
  const tiny = { classes: 3, seed: 7, externalDataAbove: 1024 };

  it('writes the velocity weights beside the .onnx and reads them back bit for bit', async () => {
    const inline = await readModelDir((await createTinyModel(join(await root, 'in'), tiny)).dir);
    const dir = join(await root, 'ext');
    const { manifest } = await createTinyModel(dir, tiny);
    expect(manifest.files.velocityData).toBe('velocity.onnx.data');
    expect((await fs.readdir(dir)).sort()).toEqual(
      ['head.onnx', 'manifest.json', 'velocity.onnx', 'velocity.onnx.data'].sort(),
    );
    // The weights are outside the protobuf: the .onnx is a small fraction of the data file.
    const onnx = (await fs.stat(join(dir, 'velocity.onnx'))).size;
    const data = (await fs.stat(join(dir, 'velocity.onnx.data'))).size;
    expect(onnx * 4).toBeLessThan(data);
    const back = await readModelDir(dir);
    expect([...back.velocity.initializers.keys()]).toEqual([
      ...inline.velocity.initializers.keys(),
    ]);
    for (const [k, t] of inline.velocity.initializers)
      expect(back.velocity.initializers.get(k)!.data).toEqual(t.data);
    expect(back.manifest).toEqual(manifest);
  });

  it('keeps weights on disk when read by reference, and reads them only on demand', async () => {
    const dir = join(await root, 'ref');
    await createTinyModel(dir, tiny);
    const copy = await readModelDir(dir);
    const ref = await readModelDir(dir, { weights: 'by-reference' });
    const big = [...ref.velocity.initializers].filter(([, t]) => fileRefOf(t));
    expect(big.length).toBeGreaterThan(0);
    expect(big.every(([, t]) => !isInMemory(t))).toBe(true);
    const [name, t] = big[0];
    expect(fileRefOf(t)!.path).toBe(join(dir, 'velocity.onnx.data'));
    expect(t.data).toEqual(copy.velocity.initializers.get(name)!.data);
    expect(isInMemory(t)).toBe(true);
  });

  it('a model read by reference refuses a data file replaced under it', async () => {
    const dir = join(await root, 'swap');
    await createTinyModel(dir, tiny);
    const ref = await readModelDir(dir, { weights: 'by-reference' });
    await createTinyModel(dir, { ...tiny, seed: 8, overwrite: true });
    const t = [...ref.velocity.initializers.values()].find((x) => fileRefOf(x))!;
    expect(() => t.data).toThrow(/changed on disk since the model was read|no such file/);
  });

  it('fails naming the data file when it is missing', async () => {
    const dir = join(await root, 'nodata');
    await createTinyModel(dir, tiny);
    await fs.rm(join(dir, 'velocity.onnx.data'));
    await expect(readModelDir(dir)).rejects.toThrow(/velocity\.onnx\.data/);
  });

  it('replacing it with a small net drops the old data file; a stale one is ignored', async () => {
    const dir = join(await root, 'shrink');
    await createTinyModel(dir, tiny);
    await fs.writeFile(join(dir, 'README.md'), 'notes\n');
    await createTinyModel(dir, { ...tiny, externalDataAbove: undefined, overwrite: true });
    expect((await fs.readdir(dir)).sort()).toEqual(
      ['README.md', 'head.onnx', 'manifest.json', 'velocity.onnx'].sort(),
    );
    expect((await readManifest(dir)).files.velocityData).toBeUndefined();
    // A stale data file beside an inline .onnx (no manifest entry) plays no part in loading.
    await fs.writeFile(join(dir, 'velocity.onnx.data'), new Uint8Array(64).fill(0xff));
    const m = await readModelDir(dir, { weights: 'by-reference' });
    expect([...m.velocity.initializers.values()].some((t) => fileRefOf(t))).toBe(false);
  });

  it('is written all or nothing: a failed write leaves no .onnx without its data', async () => {
    const dir = join(await root, 'crash');
    const { manifest } = await createTinyModel(dir, tiny);
    const loaded = await readModelDir(dir);
    // A head that cannot be encoded fails after the velocity files are written (temp dir).
    const badHead = {
      ...loaded.head,
      nodes: [{ ...loaded.head.nodes[0], attrs: { x: { t: 'bad' } } }],
    };
    await expect(
      writeModelDir(
        dir,
        { ...loaded, head: badHead as never },
        { overwrite: true, externalDataAbove: 1024 },
      ),
    ).rejects.toThrow(/cannot write model directory/);
    // The old directory is untouched and nothing half-written is left beside it.
    expect(await readManifest(dir)).toEqual(manifest);
    expect((await readModelDir(dir)).velocity.initializers.size).toBe(
      loaded.velocity.initializers.size,
    );
    const left = (await fs.readdir(await root)).filter((f) => f.startsWith('.crash'));
    expect(left).toEqual([]);
  });

  it('the manifest names each file once and validates an import record', async () => {
    const dir = join(await root, 'dup');
    const { manifest } = await createTinyModel(dir, tiny);
    await fs.writeFile(
      join(dir, 'manifest.json'),
      JSON.stringify({ ...manifest, files: { ...manifest.files, velocityData: 'head.onnx' } }),
    );
    await expect(readManifest(dir)).rejects.toThrow(/field files names one file twice/);
    await fs.writeFile(
      join(dir, 'manifest.json'),
      JSON.stringify({
        ...manifest,
        provenance: { ...manifest.provenance, import: { family: 'x' } },
      }),
    );
    await expect(readManifest(dir)).rejects.toThrow(/provenance\.import\.family/);
  });
});
