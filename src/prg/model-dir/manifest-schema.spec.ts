import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTinyModel } from '../testing/tiny-model';
import { readModelDir } from './io';
import { validateManifest } from './manifest-schema';

const root = fs.mkdtemp(join(tmpdir(), 'prg-manifest-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

describe('manifest schema', () => {
  it('names the bad field of a manifest', async () => {
    const { manifest } = await createTinyModel(join(await root, 'm'));
    expect(validateManifest(JSON.parse(JSON.stringify(manifest)))).toEqual(manifest);
    expect(() => validateManifest({ ...manifest, schema: 'x' })).toThrow(/field schema/);
    expect(() =>
      validateManifest({ ...manifest, solver: { ...manifest.solver, tStar: 2 } }),
    ).toThrow(/field solver\.tStar/);
    expect(() =>
      validateManifest({ ...manifest, solver: { ...manifest.solver, name: 'heun' } }),
    ).toThrow(/field solver\.name must be one of euler, midpoint, rk4, dopri5/);
    expect(() => validateManifest({ ...manifest, classes: ['a'] })).toThrow(/field classes/);
    expect(() =>
      validateManifest({ ...manifest, files: { velocity: '../x.onnx', head: 'h.onnx' } }),
    ).toThrow(/files\.velocity/);
  });

  it('velocity kind onnx, labels, untrainableOps and provenance.import are checked', async () => {
    const { manifest } = await createTinyModel(join(await root, 'c'), { labels: 3 });
    const vel = manifest.architecture.velocity;
    expect(vel.labels).toEqual({ classes: 3, nullClass: 3 });
    const withVel = (v: Record<string, unknown>) => ({
      ...manifest,
      architecture: { ...manifest.architecture, velocity: { ...vel, ...v } },
    });
    expect(validateManifest(withVel({ kind: 'onnx' })).architecture.velocity.kind).toBe('onnx');
    expect(() => validateManifest(withVel({ kind: 'mlp' }))).toThrow(
      /velocity\.kind must be one of unet, dit, onnx/,
    );
    expect(() => validateManifest(withVel({ labels: { classes: 3, nullClass: 2 } }))).toThrow(
      /labels\.nullClass must be >= classes \(3\)/,
    );
    expect(() =>
      validateManifest(withVel({ labels: { classes: 3, nullClass: 3, cfgScale: -1 } })),
    ).toThrow(/labels\.cfgScale/);
    expect(() => validateManifest(withVel({ untrainableOps: [] }))).toThrow(/untrainableOps/);
    expect(
      validateManifest(withVel({ untrainableOps: ['LayerNormalization'] })).architecture.velocity
        .untrainableOps,
    ).toEqual(['LayerNormalization']);
    expect(() =>
      validateManifest({
        ...manifest,
        provenance: { ...manifest.provenance, import: { family: 'keras' } },
      }),
    ).toThrow(/provenance\.import\.family must be one of sit, torchcfm-unet, onnx/);
  });

  it('a velocity net with input y needs labels in the manifest, and the other way round', async () => {
    const dir = join(await root, 'y');
    await createTinyModel(dir, { labels: 2 });
    const m = JSON.parse(await fs.readFile(join(dir, 'manifest.json'), 'utf8'));
    delete m.architecture.velocity.labels;
    await fs.writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
    await expect(readModelDir(dir)).rejects.toThrow(
      /exactly inputs x, t .*an input y needs architecture\.velocity\.labels.*has x, t, y/,
    );
    const plain = join(await root, 'plain');
    await createTinyModel(plain);
    const p = JSON.parse(await fs.readFile(join(plain, 'manifest.json'), 'utf8'));
    p.architecture.velocity.labels = { classes: 2, nullClass: 2 };
    await fs.writeFile(join(plain, 'manifest.json'), JSON.stringify(p));
    await expect(readModelDir(plain)).rejects.toThrow(/exactly inputs x, t and y/);
  });
});
