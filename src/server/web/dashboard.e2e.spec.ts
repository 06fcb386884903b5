/**
 * Serving the dashboard (no browser: test/web drives one): index.html revalidated, hashed assets
 * immutable, API routes and unknown paths untouched, and a clear 404 at `/` when it is not built.
 * Also the thumbnails route it reads, GET /datasets/:id/samples, for both upload formats.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idx, imageFolderZip } from '../datasets/testing/fixtures';
import { createTestApp, TestApp } from '../testing/test-app';
import { cacheControlFor } from './dashboard.module';

let root: string;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'prg-dashboard-'));
  Object.assign(process.env, {
    DATA_DIR: path.join(root, 'datasets'),
    JOBS_DIR: path.join(root, 'jobs'),
    UPLOAD_TMP_DIR: path.join(root, 'uploads'),
  });
  delete process.env.REDIS_URL;
});

afterAll(async () => {
  delete process.env.WEB_DIR;
  await fs.rm(root, { recursive: true, force: true });
});

describe('cacheControlFor', () => {
  it('makes only files under assets/ immutable', () => {
    expect(cacheControlFor('/w', '/w/assets/index-abc123.js')).toBe(
      'public, max-age=31536000, immutable',
    );
    expect(cacheControlFor('/w', '/w/index.html')).toBe('no-cache');
    expect(cacheControlFor('/w', '/w/assets.txt')).toBe('no-cache');
  });
});

describe('a built dashboard', () => {
  let t: TestApp;
  beforeAll(async () => {
    const web = path.join(root, 'web');
    await fs.mkdir(path.join(web, 'assets'), { recursive: true });
    await fs.writeFile(path.join(web, 'index.html'), '<!doctype html><title>PRG</title>');
    await fs.writeFile(path.join(web, 'assets', 'index-abc123.js'), 'console.log(1)');
    process.env.WEB_DIR = web;
    t = await createTestApp([{ name: 'tiny' }]);
  });
  afterAll(() => t?.close());
  const http = () => request(t.app.getHttpServer());

  it('serves / as index.html, revalidated on every visit', async () => {
    const r = await http().get('/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/text\/html/);
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.text).toContain('<title>PRG</title>');
  });

  it('serves hashed assets as immutable', async () => {
    const r = await http().get('/assets/index-abc123.js');
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });

  it('leaves API routes and unknown paths to the API', async () => {
    expect((await http().get('/models')).body.models[0].name).toBe('tiny');
    for (const p of ['/try', '/assets/missing.js'])
      expect((await http().get(p)).body, p).toMatchObject({ statusCode: 404, code: 'NOT_FOUND' });
    // Under /v2 the Open Inference Protocol's own error shape answers: {error, code}.
    const v2 = await http().get('/v2/models');
    expect(v2.status).toBe(404);
    expect(v2.body).toMatchObject({ code: 'NOT_FOUND' });
    expect(typeof v2.body.error).toBe('string');
    expect((await http().post('/')).body).toMatchObject({ statusCode: 404, code: 'NOT_FOUND' });
  });
});

describe('a dashboard not built', () => {
  it('answers / with a 404 that says how to build it', async () => {
    process.env.WEB_DIR = path.join(root, 'nothing-here');
    const t = await createTestApp([{ name: 'tiny' }]);
    try {
      const r = await request(t.app.getHttpServer()).get('/');
      expect(r.status).toBe(404);
      expect(r.body.code).toBe('NOT_FOUND');
      expect(r.body.message).toMatch(/dashboard is not built .*npm run build/);
    } finally {
      await t.close();
    }
  });
});

describe('GET /datasets/:id/samples', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp([{ name: 'tiny' }]);
  });
  afterAll(() => t?.close());
  const http = () => request(t.app.getHttpServer());
  const size = async (b64: string) => {
    const m = await sharp(Buffer.from(b64, 'base64')).metadata();
    return [m.format, m.width, m.height];
  };

  it('gives the first images of each class of an ImageFolder upload', async () => {
    const up = await http()
      .post('/datasets')
      .attach('file', await imageFolderZip({ a: 3, b: 5 }, { w: 100, h: 80 }), 'x.zip');
    expect(up.status).toBe(201);
    const r = await http().get(`/datasets/${up.body.id}/samples?perClass=4`);
    expect(r.status).toBe(200);
    expect(
      r.body.classes.map((c: { name: string; count: number; images: string[] }) => [
        c.name,
        c.count,
        c.images.length,
      ]),
    ).toEqual([
      ['a', 3, 3],
      ['b', 5, 4],
    ]);
    // Shrunk to fit 64 px, aspect kept.
    expect(await size(r.body.classes[1].images[0])).toEqual(['png', 64, 51]);
  });

  it('gives the first images of each label of an IDX upload, in file order', async () => {
    const n = 6;
    const px = new Uint8Array(n * 4 * 4).map((_, i) => Math.floor(i / 16) * 40); // image k is all 40k
    const up = await http()
      .post('/datasets')
      .attach('images', idx([n, 4, 4], px), 'i.idx')
      .attach('labels', idx([n], [1, 0, 1, 1, 0, 1]), 'l.idx');
    expect(up.status).toBe(201);
    const r = await http().get(`/datasets/${up.body.id}/samples?perClass=2`);
    expect(r.status).toBe(200);
    const [zero, one] = r.body.classes as { name: string; images: string[] }[];
    expect([zero.name, one.name]).toEqual(['0', '1']);
    const first = async (b64: string) =>
      (await sharp(Buffer.from(b64, 'base64')).raw().toBuffer())[0];
    expect(await Promise.all(zero.images.map(first))).toEqual([40, 160]); // images 1 and 4
    expect(await Promise.all(one.images.map(first))).toEqual([0, 80]); // images 0 and 2
  });

  it('rejects a bad perClass and an unknown dataset', async () => {
    const bad = await http().get('/datasets/ds_000000000000/samples?perClass=0');
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('VALIDATION_FAILED');
    const missing = await http().get('/datasets/ds_000000000000/samples');
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('DATASET_NOT_FOUND');
  });
});
