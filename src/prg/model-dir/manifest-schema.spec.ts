import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTinyModel } from '../testing/tiny-model';
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
});
