/**
 * POST/GET/DELETE /datasets end to end over HTTP against the real app (createApp, limits from the
 * environment like production): valid ImageFolder and IDX uploads, and every rejection — each a
 * 4xx naming the problem — after which neither a dataset directory, a temp directory nor an upload
 * temp file is left behind.
 */
import { INestApplication } from '@nestjs/common';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../prg/data';
import { createTestApp, TestApp } from '../testing/test-app';
import { DatasetsConfig } from './datasets.config';
import { DATASETS_CONFIG, DatasetsService } from './datasets.service';
import { tempJobsEnv } from '../jobs/testing/helpers';
import { idx, imageFolderZip, png, renameEntry, setDeclaredSizes, zip } from './testing/fixtures';

let t: TestApp;
let app: INestApplication;
let root: string;
let cfg: DatasetsConfig;

beforeAll(async () => {
  root = await tempJobsEnv('prg-datasets-', {
    DATASET_MAX_UPLOAD_BYTES: String(64 * 1024),
    DATASET_MAX_ENTRIES: '40',
    DATASET_MAX_UNCOMPRESSED_BYTES: String(4 * 1024 * 1024),
    DATASET_MAX_RATIO: '50',
    DATASET_MAX_PIXELS: String(64 * 64),
  });
  delete process.env.REDIS_URL;
  t = await createTestApp([{ name: 'tiny' }], { apiKeys: ['test-key-123'] });
  app = t.app;
  cfg = app.get<DatasetsConfig>(DATASETS_CONFIG);
  expect(cfg.maxEntries).toBe(40);
});

afterAll(async () => {
  await t?.close();
  await fs.rm(root, { recursive: true, force: true });
});

const KEY = { 'x-api-key': 'test-key-123' };

function upload(buf: Buffer, field = 'file', name = 'data.zip') {
  return request(app.getHttpServer()).post('/datasets').set(KEY).attach(field, buf, name);
}

/** Nothing half-written: only finished dataset dirs in DATA_DIR, no upload temp files. */
async function expectClean(): Promise<void> {
  // The interceptor removes uploads as the response finishes; give the fs.rm calls a tick.
  await new Promise((r) => setTimeout(r, 50));
  const data = await fs.readdir(cfg.dataDir);
  expect(data.filter((n) => n.startsWith('.'))).toEqual([]);
  expect(await fs.readdir(cfg.uploadTmpDir)).toEqual([]);
}

async function expectRejected(
  res: request.Response,
  status: number,
  code: string,
  message: RegExp,
): Promise<void> {
  expect({ status: res.status, code: res.body.code }).toEqual({ status, code });
  expect(res.body.statusCode).toBe(status);
  expect(res.body.message).toMatch(message);
  await expectClean();
}

describe('POST /datasets (ImageFolder zip)', () => {
  it('stores a zip under one top folder and serves it back; DELETE removes it', async () => {
    const before = (await request(app.getHttpServer()).get('/datasets').set(KEY)).body.length;
    const res = await upload(await imageFolderZip({ cat: 3, dog: 2 }, { top: 'pets' })).field(
      'name',
      'pets',
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: 'pets',
      format: 'imagefolder',
      classes: ['cat', 'dog'],
      counts: [3, 2],
      total: 5,
      shape: [1, 4, 4],
    });
    const id = res.body.id as string;
    expect(await fs.readdir(path.join(cfg.dataDir, id, 'images', 'cat'))).toHaveLength(3);
    await expectClean();

    const list = await request(app.getHttpServer()).get('/datasets').set(KEY);
    expect(list.body).toHaveLength(before + 1);
    const one = await request(app.getHttpServer()).get(`/datasets/${id}`).set(KEY);
    expect(one.status).toBe(200);
    expect(one.body).toEqual(res.body);

    // What the trainer will read: the data layer loads the stored dataset as uploaded.
    const loaded = await loadDataset(await app.get(DatasetsService).spec(id));
    expect({ classes: loaded.classes, n: loaded.n, shape: loaded.shape }).toEqual({
      classes: ['cat', 'dog'],
      n: 5,
      shape: [1, 4, 4],
    });

    const del = await request(app.getHttpServer()).delete(`/datasets/${id}`).set(KEY);
    expect(del.status).toBe(204);
    const gone = await request(app.getHttpServer()).get(`/datasets/${id}`).set(KEY);
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe('DATASET_NOT_FOUND');
    const del2 = await request(app.getHttpServer()).delete(`/datasets/${id}`).set(KEY);
    expect(del2.status).toBe(404);
  });

  it('accepts class folders at the root, jpeg/webp, RGB, mixed sizes (shape null), and ignores __MACOSX', async () => {
    const rgb = await png(6, 5, 3);
    const jpg = await (await import('sharp')).default(rgb).jpeg().toBuffer();
    const webp = await (await import('sharp')).default(rgb).webp().toBuffer();
    const buf = await zip([
      { name: 'a/x.png', data: rgb },
      { name: 'a/y.JPG', data: jpg },
      { name: 'b/z.webp', data: webp },
      { name: 'b/w.png', data: await png(4, 4, 3) },
      { name: '__MACOSX/a/._x.png', data: Buffer.from('junk') },
      { name: 'a/.DS_Store', data: Buffer.from('junk') },
    ]);
    const res = await upload(buf);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ classes: ['a', 'b'], counts: [2, 2], shape: null });
    expect(res.body.shapes).toEqual(['3x4x4', '3x5x6']);
    await expectClean();
  });

  it('needs an API key on every route when keys are configured', async () => {
    const res = await request(app.getHttpServer())
      .post('/datasets')
      .attach('file', await imageFolderZip({ a: 1, b: 1 }), 'd.zip');
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('UNAUTHORIZED');
    await expectClean();
    for (const r of [
      request(app.getHttpServer()).get('/datasets'),
      request(app.getHttpServer()).get('/datasets/ds_000000000000'),
      request(app.getHttpServer()).delete('/datasets/ds_000000000000'),
      request(app.getHttpServer()).get('/datasets').set('x-api-key', 'wrong-key-123'),
    ])
      expect((await r).status).toBe(401);
  });

  it('rejects an upload over the size cap (413)', async () => {
    const big = await zip([
      { name: 'a/x.png', data: Buffer.alloc(100 * 1024, 7), compress: false },
    ]);
    await expectRejected(await upload(big), 413, 'UPLOAD_TOO_LARGE', /upload cap of 65536 bytes/);
  });

  it('removes the temp file of an upload the client abandons midway', async () => {
    await new Promise<void>((resolve) => app.getHttpServer().listen(0, '127.0.0.1', resolve));
    const { port } = app.getHttpServer().address() as AddressInfo;
    const boundary = 'xxBOUNDARYxx';
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/datasets',
      headers: {
        ...KEY,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(60 * 1024),
      },
    });
    req.on('error', () => undefined);
    req.write(
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="d.zip"\r\n` +
        `content-type: application/zip\r\n\r\n`,
    );
    req.write(Buffer.alloc(20 * 1024, 1));
    // Multer has started writing the file: then the client goes away.
    const started = Date.now();
    while ((await fs.readdir(cfg.uploadTmpDir)).length === 0 && Date.now() - started < 20_000)
      await new Promise((r) => setTimeout(r, 20));
    expect((await fs.readdir(cfg.uploadTmpDir)).length).toBe(1);
    req.destroy();
    while ((await fs.readdir(cfg.uploadTmpDir)).length > 0 && Date.now() - started < 20_000)
      await new Promise((r) => setTimeout(r, 20));
    await expectClean();
    await new Promise<void>((resolve) => app.getHttpServer().close(() => resolve()));
  });

  it('rejects a zip with too many entries', async () => {
    const buf = await imageFolderZip({ a: 25, b: 25 });
    await expectRejected(
      await upload(buf),
      400,
      'ZIP_TOO_MANY_ENTRIES',
      /50 entries; the cap is 40/,
    );
  });

  it('rejects a zip declaring too many uncompressed bytes', async () => {
    // A real 4 MiB+ archive would exceed the upload cap: declare the sizes instead (the central
    // directory says 1 MiB for each of six tiny entries).
    const buf = setDeclaredSizes(await imageFolderZip({ a: 3, b: 3 }), 1024 * 1024);
    await expectRejected(
      await upload(buf),
      413,
      'ZIP_TOO_LARGE',
      /more than 4194304 uncompressed bytes/,
    );
  });

  it('rejects a high compression ratio (zip bomb)', async () => {
    const buf = await zip([
      { name: 'a/x.png', data: Buffer.alloc(1024 * 1024) },
      { name: 'b/y.png', data: await png() },
    ]);
    await expectRejected(
      await upload(buf),
      400,
      'ZIP_RATIO',
      /"a\/x.png" expands \d+×; the cap is 50×/,
    );
  });

  it('counts inflated bytes: an entry larger than its header declares is rejected', async () => {
    // Declared 10 bytes each (ratio and totals look harmless); the PNGs inflate to ~80 bytes.
    const buf = setDeclaredSizes(await imageFolderZip({ a: 1, b: 1 }), 10);
    await expectRejected(
      await upload(buf),
      400,
      'ZIP_SIZE_MISMATCH',
      /inflates to more than its declared 10 bytes/,
    );
  });

  it.each([
    ['xx/evil.png', '../evil.png', /"..\/evil.png": path traversal/],
    ['xxxxxx/e.png', '/tmp/x/e.png', /absolute path/],
    ['a/b/e.png', 'a\\b\\e.png', /backslash/],
    ['a/xx/e.png', 'a/../e.png', /path traversal/],
  ])('rejects unsafe entry name %s → %s', async (from, to, msg) => {
    const buf = renameEntry(
      await zip([
        { name: from, data: await png() },
        { name: 'b/ok.png', data: await png() },
      ]),
      from,
      to,
    );
    await expectRejected(await upload(buf), 400, 'ZIP_UNSAFE_PATH', msg);
    // Nothing escaped the data dir.
    expect(await fs.readdir(root)).toEqual(expect.not.arrayContaining(['evil.png', 'e.png']));
  });

  it('rejects symlinks', async () => {
    const buf = await zip([
      { name: 'a/link.png', data: Buffer.from('/etc/passwd'), mode: 0o120777 },
      { name: 'b/ok.png', data: await png() },
    ]);
    await expectRejected(await upload(buf), 400, 'ZIP_SYMLINK', /"a\/link.png" is a symbolic link/);
  });

  it('rejects non-image files, naming them', async () => {
    const buf = await zip([
      { name: 'a/x.png', data: await png() },
      { name: 'b/notes.txt', data: Buffer.from('hello') },
      { name: 'b/y.png', data: await png() },
    ]);
    await expectRejected(await upload(buf), 400, 'DATASET_NON_IMAGE', /"b\/notes.txt"/);
  });

  it('rejects corrupt and truncated images, naming each', async () => {
    const good = await png(8, 8);
    const buf = await zip([
      { name: 'a/x.png', data: good },
      { name: 'a/garbage.png', data: Buffer.from('definitely not a png') },
      { name: 'b/cut.png', data: good.subarray(0, good.length - 20) },
      { name: 'b/y.png', data: good },
    ]);
    const res = await upload(buf);
    await expectRejected(res, 400, 'DATASET_INVALID_IMAGE', /2 file\(s\)/);
    expect(res.body.message).toContain('a/garbage.png');
    expect(res.body.message).toContain('b/cut.png');
  });

  it('rejects images above the pixel cap', async () => {
    const buf = await zip([
      { name: 'a/x.png', data: await png(100, 100) },
      { name: 'b/y.png', data: await png() },
    ]);
    await expectRejected(await upload(buf), 413, 'DATASET_IMAGE_TOO_LARGE', /a\/x.png \(100×100\)/);
  });

  it('rejects fewer than 2 classes', async () => {
    await expectRejected(
      await upload(await imageFolderZip({ only: 3 })),
      400,
      'DATASET_TOO_FEW_CLASSES',
      /at least 2 class folders/,
    );
  });

  it('rejects an empty class folder', async () => {
    await expectRejected(
      await upload(await imageFolderZip({ a: 2, b: 2, c: 0 }, { top: 'set' })),
      400,
      'DATASET_EMPTY_CLASS',
      /"c"/,
    );
  });

  it('rejects files outside class folders and nested folders', async () => {
    await expectRejected(
      await upload(
        await zip([
          { name: 'x.png', data: await png() },
          { name: 'a/y.png', data: await png() },
        ]),
      ),
      400,
      'DATASET_LAYOUT',
      /outside class folders: "x.png"/,
    );
    await expectRejected(
      await upload(
        await zip([
          { name: 'a/deep/y.png', data: await png() },
          { name: 'b/y.png', data: await png() },
        ]),
      ),
      400,
      'DATASET_LAYOUT',
      /nested folders/,
    );
  });

  it('rejects bytes that are not a zip, a missing file and an unexpected field', async () => {
    await expectRejected(
      await upload(Buffer.from('not a zip at all')),
      400,
      'ZIP_INVALID',
      /not a readable zip/,
    );
    await expectRejected(
      await request(app.getHttpServer()).post('/datasets').set(KEY).send({ file: 'x' }),
      400,
      'UPLOAD_MISSING',
      /multipart/,
    );
    await expectRejected(
      await upload(await imageFolderZip({ a: 1, b: 1 }), 'zip'),
      400,
      'UPLOAD_UNEXPECTED_FIELD',
      /"zip"/,
    );
  });
});

describe('POST /datasets (IDX pair)', () => {
  const n = 6;
  const pixels = new Uint8Array(n * 3 * 5).map((_, i) => i);
  const labels = [0, 1, 2, 0, 1, 2];

  function idxUpload(images: Buffer, labelBuf: Buffer) {
    return request(app.getHttpServer())
      .post('/datasets')
      .set(KEY)
      .attach('images', images, 'images-idx3-ubyte')
      .attach('labels', labelBuf, 'labels-idx1-ubyte');
  }

  it('stores an IDX pair (gzipped or not) with class names', async () => {
    const res = await idxUpload(gzipSync(idx([n, 3, 5], pixels)), idx([n], labels)).field(
      'classes',
      'zero, one, two',
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      format: 'idx',
      classes: ['zero', 'one', 'two'],
      counts: [2, 2, 2],
      shape: [1, 3, 5],
    });
    const stored = await fs.readFile(path.join(cfg.dataDir, res.body.id, 'images.idx'));
    expect(stored.equals(idx([n, 3, 5], pixels))).toBe(true);
    const loaded = await loadDataset(await app.get(DatasetsService).spec(res.body.id));
    expect(loaded.classes).toEqual(['0', '1', '2']);
    expect(Array.from(loaded.labels)).toEqual(labels);
    expect(Array.from(loaded.images)).toEqual(Array.from(pixels));
    await expectClean();
  });

  it('rejects mismatched counts', async () => {
    await expectRejected(
      await idxUpload(idx([n, 3, 5], pixels), idx([5], labels.slice(0, 5))),
      400,
      'IDX_COUNT_MISMATCH',
      /6 images but labels file holds 5/,
    );
  });

  it('rejects malformed headers', async () => {
    const bad = idx([n, 3, 5], pixels);
    bad[0] = 7;
    await expectRejected(
      await idxUpload(bad, idx([n], labels)),
      400,
      'IDX_INVALID',
      /images: not an IDX file/,
    );
    await expectRejected(
      await idxUpload(idx([n, 3, 5], pixels.subarray(1)), idx([n], labels)),
      400,
      'IDX_INVALID',
      /images: dims \[6, 3, 5\] of uint8 need 106 bytes, file has 105/,
    );
    const float = idx([n], labels);
    float[2] = 0x0d;
    await expectRejected(
      await idxUpload(idx([n, 3, 5], pixels), float),
      400,
      'IDX_INVALID',
      /labels: dims \[6\] of float32 need 32 bytes/,
    );
    // Well-formed float labels are still refused: labels are class indices.
    const floatLabels = Buffer.concat([
      Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, n]),
      Buffer.alloc(4 * n),
    ]);
    await expectRejected(
      await idxUpload(idx([n, 3, 5], pixels), floatLabels),
      400,
      'IDX_INVALID',
      /labels must be a 1-D integer IDX, got float32/,
    );
    const gzBomb = gzipSync(Buffer.alloc(5 * 1024 * 1024));
    expect(gzBomb.length).toBeLessThan(cfg.maxUploadBytes);
    await expectRejected(
      await idxUpload(gzBomb, idx([n], labels)),
      413,
      'ZIP_TOO_LARGE',
      /images: gzip data expands beyond 4194304 bytes/,
    );
  });

  it('rejects a missing label value (empty class) and a single class', async () => {
    await expectRejected(
      await idxUpload(idx([n, 3, 5], pixels), idx([n], [0, 2, 2, 0, 2, 0])),
      400,
      'DATASET_EMPTY_CLASS',
      /no images with label "1"/,
    );
    await expectRejected(
      await idxUpload(idx([n, 3, 5], pixels), idx([n], [0, 0, 0, 0, 0, 0])),
      400,
      'DATASET_TOO_FEW_CLASSES',
      /at least 2 classes/,
    );
  });

  it('rejects half a pair', async () => {
    await expectRejected(
      await request(app.getHttpServer())
        .post('/datasets')
        .set(KEY)
        .attach('images', idx([n, 3, 5], pixels), 'images'),
      400,
      'UPLOAD_MISSING',
      /both file fields/,
    );
  });
});
