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

  it('checks the VAE preprocessing stage and its files together', async () => {
    const { manifest } = await createTinyModel(join(await root, 'v'), { inputShape: [4, 8, 8] });
    const image = { channels: 3, height: 64, width: 64, normalization: 'minus-one-one' };
    const pre = { kind: 'vae', image, scalingFactor: 0.18215 };
    const files = { ...manifest.files, encoder: 'vae-encoder.onnx' };
    expect(validateManifest({ ...manifest, files, preprocess: pre }).preprocess).toEqual(pre);
    expect(() => validateManifest({ ...manifest, files })).toThrow(
      /field preprocess must describe the stage when files\.encoder/,
    );
    expect(() => validateManifest({ ...manifest, preprocess: pre })).toThrow(
      /field files\.encoder must name the encoder ONNX/,
    );
    expect(() =>
      validateManifest({ ...manifest, files, preprocess: { ...pre, scalingFactor: 0 } }),
    ).toThrow(/field preprocess\.scalingFactor/);
    expect(() =>
      validateManifest({ ...manifest, files, preprocess: { ...pre, kind: 'vqgan' } }),
    ).toThrow(/field preprocess\.kind must be one of vae/);
    expect(() =>
      validateManifest({ ...manifest, files: { ...files, decoder: '../d.onnx' }, preprocess: pre }),
    ).toThrow(/files\.decoder/);
  });
});
