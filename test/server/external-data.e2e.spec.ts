/**
 * A model directory whose velocity weights are in ONNX external data (velocity.onnx.data, as an
 * imported SiT-XL/2 is written) is served like any other: the same answers as the same net
 * written inline, over REST classify and features. A directory whose data file is missing is
 * skipped at scan time, naming the file.
 */
import { rm } from 'node:fs/promises';
import * as path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelCatalog } from '../../src/server/ml/model-catalog';
import { createTestApp, TestApp, testPng } from '../../src/server/testing/test-app';

let t: TestApp;
let server: Parameters<typeof request>[0];

// Same seed, same weights: only the file layout differs (a 1 KiB threshold instead of 1 GiB).
const same = { classes: ['a', 'b', 'c'], seed: 5 };

beforeAll(async () => {
  t = await createTestApp([
    { ...same, name: 'inline', version: '1' },
    { ...same, name: 'ext', version: '1', externalDataAbove: 1024 },
    { ...same, name: 'broken', version: '1', externalDataAbove: 1024 },
  ]);
  server = t.app.getHttpServer();
});

afterAll(async () => {
  await t?.close();
});

describe('a model directory with external data', () => {
  it('classifies and extracts features as the inline copy does', async () => {
    const img = (await testPng(8, 8, 1, 4)).toString('base64');
    const classify = (id: string) =>
      request(server)
        .post('/classify')
        .send({ model: id, images: [img], topK: 3 })
        .expect(200);
    const [a, b] = await Promise.all([classify('ext@1'), classify('inline@1')]);
    expect(a.body.model).toBe('ext@1');
    // Within float32 rounding, not bit for bit: with PRG_ORT_PREPACK=0 ORT serves the mapped
    // weights unpacked, and packed and unpacked GEMM kernels sum in different orders.
    const close = (x: number[], y: number[]) => {
      expect(x).toHaveLength(y.length);
      x.forEach((v, i) => expect(Math.abs(v - y[i])).toBeLessThan(1e-6));
    };
    type Result = { label: string; topK: { label: string; probability: number }[] };
    const [ra, rb] = [a.body.results[0] as Result, b.body.results[0] as Result];
    expect(ra.label).toBe(rb.label);
    expect(ra.topK.map((k) => k.label)).toEqual(rb.topK.map((k) => k.label));
    close(
      ra.topK.map((k) => k.probability),
      rb.topK.map((k) => k.probability),
    );
    const features = (id: string) =>
      request(server)
        .post(`/models/${id}/features`)
        .send({ images: [img], t: 0.3, steps: 2 })
        .expect(200);
    const [fa, fb] = await Promise.all([features('ext@1'), features('inline@1')]);
    expect(fa.body.shape).toEqual([1, 64]);
    close(fa.body.vectors[0], fb.body.vectors[0]);
  });

  it('is skipped at scan time, naming the file, when its data file is missing', async () => {
    const dir = path.join(t.modelsDir, 'broken-1');
    await rm(path.join(dir, 'velocity.onnx.data'));
    const catalog = t.app.get(ModelCatalog);
    await catalog.rescan();
    expect(catalog.invalid.find((d) => d.dir === dir)?.problems).toEqual([
      'file velocity.onnx.data missing',
    ]);
    const r = await request(server).get('/models').expect(200);
    expect(r.body.models.map((m: { id: string }) => m.id)).not.toContain('broken@1');
  });
});
