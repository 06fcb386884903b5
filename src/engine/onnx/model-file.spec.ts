import { promises as fs, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from './builder';
import { encodeForRuntime, readModelFile, writeModelFile } from './model-file';
import { decodeModel } from './proto';
import { Graph, tensor } from './types';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'prg-onnx-ext-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** y = tanh(x·Wᵀ + b) with a 64×32 weight (8 KiB: external) and a 64-float bias (256 B). */
function smallNet(): Graph {
  const b = new GraphBuilder('ext');
  const x = b.input('x', ['N', 32]);
  const w = Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i) / 8);
  const bias = Array.from({ length: 64 }, (_, i) => i / 100);
  const y = b.tanh(
    b.linear(
      x,
      b.param('fc.weight', tensor('float32', [64, 32], w)),
      b.param('fc.bias', tensor('float32', [64], bias)),
    ),
  );
  b.output(y, 'y');
  return b.build();
}

describe('ONNX external data', () => {
  it('writes large initializers beside the model and reads them back bit-exactly', async () => {
    const g = smallNet();
    const path = join(dir, 'net.onnx');
    const r = await writeModelFile(path, g, { externalData: { threshold: 1024 } });
    expect(r.data).toBe(join(dir, 'net.onnx.data'));
    // The weight went out (8 KiB at offset 0), the bias stayed in the model.
    expect((await fs.stat(r.data as string)).size).toBe(64 * 32 * 4);
    expect((await fs.stat(path)).size).toBeLessThan(2048);
    const back = await readModelFile(path);
    for (const [k, t] of g.initializers) expect(back.initializers.get(k)?.data, k).toEqual(t.data);
    // Without the path, the reader says where the data is instead of producing zeros.
    expect(() => decodeModel(readFileSync(path))).toThrow(
      /fc\.weight: stored in the external file net\.onnx\.data; load the model by its path/,
    );
  });

  it('loads in ONNX Runtime by path with the same outputs as the in-memory model', async () => {
    const g = smallNet();
    const inside = join(dir, 'inside.onnx');
    const outside = join(dir, 'outside.onnx');
    await writeModelFile(inside, g);
    await writeModelFile(outside, g, { externalData: true });
    const x = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 64 }, (_, i) => i / 64 - 0.5),
      [2, 32],
    );
    const run = async (p: string) => {
      const s = await ort.InferenceSession.create(p);
      try {
        return (await s.run({ x })).y.data as Float32Array;
      } finally {
        await s.release();
      }
    };
    expect(await run(outside)).toEqual(await run(inside));
  });

  it('refuses a truncated data file and a location outside the model directory', async () => {
    const g = smallNet();
    const path = join(dir, 'trunc.onnx');
    const r = await writeModelFile(path, g, { externalData: true });
    await fs.truncate(r.data as string, 100);
    await expect(readModelFile(path)).rejects.toThrow(
      /trunc\.onnx\.data ends before byte 8192 \(truncated\?\)/,
    );
    await expect(
      writeModelFile(path, g, { externalData: { location: '../x.data' } }),
    ).rejects.toThrow(/must be a plain file name/);
  });

  it('hands ORT the weights as an in-memory external-data buffer past the inline limit', async () => {
    const g = smallNet();
    const inline = encodeForRuntime(g);
    expect(inline.external).toBeUndefined();
    const ext = encodeForRuntime(g, 4096);
    // One view per large tensor (the 8 KiB weight; the 256-byte bias stays inline), no copy.
    expect(ext.external?.length).toBe(1);
    expect(ext.external?.[0].data.buffer).toBe(g.initializers.get('fc.weight')?.data.buffer);
    expect(ext.model.byteLength).toBeLessThan(2048);
    const x = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 32 }, (_, i) => i / 32),
      [1, 32],
    );
    const a = await ort.InferenceSession.create(inline.model);
    const b = await ort.InferenceSession.create(ext.model, {
      externalData: (ext.external ?? []).map((e) => ({ path: e.location, data: e.data })),
    });
    expect((await b.run({ x })).y.data).toEqual((await a.run({ x })).y.data);
    await a.release();
    await b.release();
  });
});
