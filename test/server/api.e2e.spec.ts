/**
 * End to end against the real app (real model loader, tiny random models in a temp MODELS_DIR):
 * every REST route and GraphQL operation of the server core, and every bad-input path → 4xx.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTinyModel } from '../../src/prg/testing/tiny-model';
import { createTestApp, TestApp, testPng } from '../../src/server/testing/test-app';

let t: TestApp;
let server: Parameters<typeof request>[0];
let png8: Buffer;
let b64: string;

beforeAll(async () => {
  t = await createTestApp(
    [
      { name: 'tiny', version: '0.0.1', classes: ['zero', 'one', 'two'], seed: 1 },
      { name: 'rgb', version: '1.0.0', classes: 4, inputShape: [3, 8, 8], seed: 2 },
    ],
    {
      maxImages: 4,
      maxPixels: 100 * 100,
      maxUploadBytes: 200_000,
      maxSteps: 20,
      maxFrames: 10,
      defaultModel: 'tiny',
    },
  );
  server = t.app.getHttpServer();
  png8 = await testPng(8, 8, 1, 1);
  b64 = png8.toString('base64');
});

afterAll(async () => {
  await t?.close();
});

const expectError = (res: request.Response, status: number, code: string, text?: RegExp) => {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.statusCode).toBe(status);
  expect(res.body.code).toBe(code);
  expect(typeof res.body.message).toBe('string');
  if (text) expect(res.body.message).toMatch(text);
};

describe('models', () => {
  it('GET /models lists both models and the default', async () => {
    const r = await request(server).get('/models').expect(200);
    expect(r.body.default).toBe('tiny@0.0.1');
    expect(r.body.models.map((m: { id: string }) => m.id)).toEqual(['rgb@1.0.0', 'tiny@0.0.1']);
  });

  it('GET /models/:id by id and by name, with the manifest', async () => {
    const a = await request(server).get('/models/tiny@0.0.1').expect(200);
    expect(a.body.manifest.classes).toEqual(['zero', 'one', 'two']);
    expect(a.body.metrics).toEqual({});
    expect(a.body.input).toMatchObject({ channels: 1, height: 8, width: 8 });
    const b = await request(server).get('/models/rgb').expect(200);
    expect(b.body.id).toBe('rgb@1.0.0');
  });

  it('unknown model → 404 naming what exists', async () => {
    const r = await request(server).get('/models/nope@9');
    expectError(r, 404, 'MODEL_NOT_FOUND', /nope@9.*tiny@0\.0\.1/);
  });

  it('a new version written to MODELS_DIR is served without restart', async () => {
    await createTinyModel(path.join(t.modelsDir, 'tiny-0.0.2'), {
      name: 'tiny',
      version: '0.0.2',
      classes: 3,
    });
    // An unknown id triggers a rescan before answering 404.
    await request(server).get('/models/tiny@0.0.2').expect(200);
    const r = await request(server).post('/models/rescan').expect(200);
    expect(r.body.models.map((m: { id: string }) => m.id)).toContain('tiny@0.0.2');
    // "tiny" = its latest version; the default stays pinned by DEFAULT_MODEL=tiny → latest.
    const c = await request(server)
      .post('/classify')
      .send({ model: 'tiny', images: [b64] })
      .expect(200);
    expect(c.body.model).toBe('tiny@0.0.2');
    await rm(path.join(t.modelsDir, 'tiny-0.0.2'), { recursive: true });
    await request(server).post('/models/rescan').expect(200);
    expectError(await request(server).get('/models/tiny@0.0.2'), 404, 'MODEL_NOT_FOUND');
  });

  it('a directory with a bad manifest is skipped, not fatal', async () => {
    const dir = path.join(t.modelsDir, 'broken');
    await createTinyModel(dir, { name: 'broken', version: '1' });
    const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    m.classes = ['only-one'];
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(m));
    const r = await request(server).post('/models/rescan').expect(200);
    expect(r.body.models.map((x: { id: string }) => x.id)).not.toContain('broken@1');
    await rm(dir, { recursive: true });
  });
});

describe('POST /classify', () => {
  it('JSON base64 → one result per image with label, index, probability, topK, ood', async () => {
    const r = await request(server)
      .post('/classify')
      .send({ images: [b64], topK: 2 })
      .expect(200);
    expect(r.body.model).toBe('tiny@0.0.1');
    expect(r.body.results).toHaveLength(1);
    const x = r.body.results[0];
    expect(['zero', 'one', 'two']).toContain(x.label);
    expect(['zero', 'one', 'two'][x.index]).toBe(x.label);
    expect(x.topK).toHaveLength(2);
    expect(x.topK[0]).toEqual({ label: x.label, probability: x.probability });
    expect(x.topK[0].probability).toBeGreaterThanOrEqual(x.topK[1].probability);
    expect(x.ood).toBeNull(); // the fixture has no OOD thresholds
  });

  it('multipart files keep request order and match single-image results (batching is invisible)', async () => {
    const a = await testPng(8, 8, 1, 2);
    const b = await testPng(8, 8, 1, 3);
    const both = await request(server)
      .post('/classify')
      .attach('images', a, 'a.png')
      .attach('images', b, 'b.png')
      .field('topK', '3')
      .expect(200);
    const one = async (img: Buffer) =>
      (
        await request(server)
          .post('/classify')
          .attach('images', img, 'x.png')
          .field('topK', '3')
          .expect(200)
      ).body.results[0];
    const [ra, rb] = [await one(a), await one(b)];
    expect(both.body.results).toHaveLength(2);
    for (const [got, want] of [
      [both.body.results[0], ra],
      [both.body.results[1], rb],
    ]) {
      expect(got.index).toBe(want.index);
      got.topK.forEach((g: { probability: number }, i: number) =>
        // float32 run at batch 2 vs batch 1: same math, summation order may differ in the last bits.
        expect(g.probability).toBeCloseTo(want.topK[i].probability, 5),
      );
    }
  });

  it('converts other sizes and colour modes (RGBA 30×20 JPEG/WebP/PNG) to the model input', async () => {
    const rgba = await testPng(30, 20, 4);
    const jpeg = await sharp(await testPng(16, 16, 3))
      .jpeg()
      .toBuffer();
    const webp = await sharp(await testPng(12, 9, 3))
      .webp()
      .toBuffer();
    const r = await request(server)
      .post('/classify')
      .send({ images: [rgba, jpeg, webp].map((x) => x.toString('base64')) })
      .expect(200);
    expect(r.body.results).toHaveLength(3);
    // A grey image on an RGB model: replicated to 3 channels.
    await request(server)
      .post('/classify')
      .send({ model: 'rgb@1.0.0', images: [b64] })
      .expect(200);
  });

  it('accepts a data: URL, steps and solver', async () => {
    const r = await request(server)
      .post('/classify')
      .send({ images: [`data:image/png;base64,${b64}`], steps: 2, solver: 'midpoint' })
      .expect(200);
    expect(r.body.results).toHaveLength(1);
  });
});

describe('POST /models/:id/features, /ood, /trajectory', () => {
  it('features as JSON vectors with their shape; pool averages to n×n', async () => {
    const r = await request(server)
      .post('/models/tiny@0.0.1/features')
      .send({ images: [b64, b64], t: 0.5, steps: 2 })
      .expect(200);
    // [images, D]: the head's input layout, x_t flattened (or pooled to C·n·n).
    expect(r.body.shape).toEqual([2, 64]);
    expect(r.body.vectors).toHaveLength(2);
    expect(r.body.vectors[0]).toHaveLength(64);
    expect(r.body.vectors[0]).toEqual(r.body.vectors[1]);
    const p = await request(server)
      .post('/models/tiny/features')
      .send({ images: [b64], pool: 2 })
      .expect(200);
    expect(p.body.shape).toEqual([1, 4]);
  });

  it('features as base64 float32 decode to the JSON values', async () => {
    const j = await request(server)
      .post('/models/tiny/features')
      .send({ images: [b64], t: 1 })
      .expect(200);
    const r = await request(server)
      .post('/models/tiny/features')
      .attach('images', png8, 'a.png')
      .field('t', '1')
      .field('format', 'base64')
      .expect(200);
    expect(r.body.dtype).toBe('float32');
    const buf = Buffer.from(r.body.vectors[0], 'base64');
    const v = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    expect(Array.from(v)).toEqual(j.body.vectors[0]);
  });

  it('ood returns every score per image', async () => {
    const r = await request(server)
      .post('/models/tiny/ood')
      .send({ images: [b64, b64] })
      .expect(200);
    expect(r.body.results).toHaveLength(2);
    const names = Object.keys(r.body.results[0].scores);
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) expect(Number.isFinite(r.body.results[0].scores[n])).toBe(true);
  });

  it('classify reports the primary OOD score and flag when the manifest has thresholds', async () => {
    const dir = path.join(t.modelsDir, 'ood-1');
    // msp ∈ [1/3, 1] for 3 classes: threshold 2 flags everything, -1 nothing.
    await createTinyModel(dir, {
      name: 'oodm',
      version: '1',
      classes: 3,
      ood: {
        primary: 'msp',
        scores: { msp: { threshold: 2, tpr: 0.95, higherIsInDistribution: true } },
      },
    });
    const r = await request(server)
      .post('/classify')
      .send({ model: 'oodm@1', images: [b64] })
      .expect(200);
    expect(r.body.results[0].ood).toMatchObject({ name: 'msp', flagged: true });
    expect(r.body.results[0].ood.score).toBeCloseTo(r.body.results[0].probability, 5);
    const o = await request(server)
      .post('/models/oodm@1/ood')
      .send({ images: [b64] })
      .expect(200);
    expect(o.body.primary).toBe('msp');
    expect(o.body.results[0].flagged).toEqual({ msp: true });
  });

  it('trajectory: a PNG sprite of the frames, or JSON frames', async () => {
    const r = await request(server)
      .post('/models/tiny/trajectory')
      .send({ images: [b64], frames: 4, scale: 2 })
      .buffer(true)
      .parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      })
      .expect(200);
    expect(r.headers['content-type']).toMatch(/image\/png/);
    const meta = await sharp(r.body as Buffer).metadata();
    expect([meta.width, meta.height]).toEqual([4 * 8 * 2, 8 * 2]);
    const j = await request(server)
      .post('/models/tiny/trajectory')
      .send({ images: [b64], frames: 3, format: 'frames' })
      .expect(200);
    expect(j.body.t).toEqual([0, 0.5, 1]);
    expect(j.body.frames).toHaveLength(3);
    const f0 = await sharp(Buffer.from(j.body.frames[0], 'base64')).metadata();
    expect([f0.width, f0.height, f0.format]).toEqual([8, 8, 'png']);
  });
});

describe('bad input → 4xx naming the problem', () => {
  it('non-image bytes', async () => {
    const r = await request(server)
      .post('/classify')
      .attach('images', Buffer.from('hello, not an image'), 'x.png');
    expectError(r, 400, 'INVALID_IMAGE', /images\[0\].*not a readable image/);
  });

  it('truncated PNG and JPEG', async () => {
    const big = await testPng(64, 64, 3, 5);
    const r = await request(server)
      .post('/classify')
      .send({ images: [big.subarray(0, Math.floor(big.length / 2)).toString('base64')] });
    expectError(r, 400, 'INVALID_IMAGE', /truncated or corrupt/);
    const jpeg = await sharp(big).jpeg().toBuffer();
    const j = await request(server)
      .post('/classify')
      .attach('images', jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'cut.jpg');
    expect(j.status).toBe(400);
    expect(j.body.code).toBe('INVALID_IMAGE');
  });

  it('an unsupported format (GIF)', async () => {
    const gif = await sharp(await testPng(8, 8, 3))
      .gif()
      .toBuffer();
    expectError(
      await request(server)
        .post('/classify')
        .send({ images: [gif.toString('base64')] }),
      415,
      'UNSUPPORTED_IMAGE_FORMAT',
      /gif/,
    );
  });

  it('pixel dimensions above the cap (checked before decoding)', async () => {
    const huge = await sharp({
      create: { width: 200, height: 200, channels: 3, background: '#000' },
    })
      .png()
      .toBuffer();
    expectError(
      await request(server).post('/classify').attach('images', huge, 'huge.png'),
      413,
      'IMAGE_TOO_LARGE',
      /200×200.*MAX_PIXELS/,
    );
  });

  it('oversize request bodies (JSON and multipart)', async () => {
    const junk = 'A'.repeat(300_000);
    expectError(
      await request(server)
        .post('/classify')
        .send({ images: [junk] }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expectError(
      await request(server).post('/classify').attach('images', Buffer.alloc(300_000, 1), 'big.png'),
      413,
      'PAYLOAD_TOO_LARGE',
    );
  });

  it('malformed JSON', async () => {
    const r = await request(server)
      .post('/classify')
      .set('content-type', 'application/json')
      .send('{"images": [');
    expectError(r, 400, 'INVALID_JSON');
  });

  it('unknown model on every inference route', async () => {
    expectError(
      await request(server)
        .post('/classify')
        .send({ model: 'nope', images: [b64] }),
      404,
      'MODEL_NOT_FOUND',
    );
    for (const op of ['features', 'ood', 'trajectory'])
      expectError(
        await request(server)
          .post(`/models/nope/${op}`)
          .send({ images: [b64] }),
        404,
        'MODEL_NOT_FOUND',
      );
  });

  it('t outside (0, 1]', async () => {
    for (const bad of [0, -0.1, 1.5])
      expectError(
        await request(server)
          .post('/models/tiny/features')
          .send({ images: [b64], t: bad }),
        400,
        'INVALID_T',
        /\(0, 1\]/,
      );
    expectError(
      await request(server)
        .post('/models/tiny/features')
        .send({ images: [b64], t: 'abc' }),
      400,
      'VALIDATION_FAILED',
      /t must be a number/,
    );
  });

  it('steps above the cap, non-integer steps, bad solver, bad pool, bad frames', async () => {
    expectError(
      await request(server)
        .post('/classify')
        .send({ images: [b64], steps: 21 }),
      400,
      'INVALID_STEPS',
      /MAX_STEPS/,
    );
    expectError(
      await request(server)
        .post('/classify')
        .send({ images: [b64], steps: 1.5 }),
      400,
      'VALIDATION_FAILED',
      /steps/,
    );
    expectError(
      await request(server)
        .post('/classify')
        .send({ images: [b64], solver: 'heun' }),
      400,
      'VALIDATION_FAILED',
      /solver must be one of/,
    );
    expectError(
      await request(server)
        .post('/models/tiny/features')
        .send({ images: [b64], pool: 9 }),
      400,
      'INVALID_POOL',
    );
    expectError(
      await request(server)
        .post('/models/tiny/features')
        .send({ images: [b64], pool: 'avg' }),
      400,
      'VALIDATION_FAILED',
      /pool/,
    );
    expectError(
      await request(server)
        .post('/models/tiny/trajectory')
        .send({ images: [b64], frames: 11 }),
      400,
      'INVALID_FRAMES',
      /MAX_FRAMES/,
    );
    expectError(
      await request(server)
        .post('/models/tiny/trajectory')
        .send({ images: [b64, b64] }),
      400,
      'ONE_IMAGE',
    );
  });

  it('too many images (JSON and multipart), none at all, unknown fields', async () => {
    expectError(
      await request(server)
        .post('/classify')
        .send({ images: Array(5).fill(b64) }),
      400,
      'TOO_MANY_IMAGES',
      /at most 4/,
    );
    let req = request(server).post('/classify');
    for (let i = 0; i < 5; i++) req = req.attach('images', png8, `${i}.png`);
    expectError(await req, 400, 'TOO_MANY_IMAGES');
    expectError(await request(server).post('/classify').send({}), 400, 'NO_IMAGES');
    expectError(
      await request(server).post('/classify').attach('photos', png8, 'a.png'),
      400,
      'BAD_REQUEST',
      /photos/,
    );
    expectError(
      await request(server)
        .post('/classify')
        .send({ images: [b64], bogus: 1 }),
      400,
      'VALIDATION_FAILED',
      /bogus/,
    );
    expectError(
      await request(server)
        .post('/classify')
        .send({ images: ['%%%not base64%%%'] }),
      400,
      'INVALID_IMAGE',
      /base64/,
    );
  });
});

describe('GraphQL', () => {
  const gql = (query: string, variables: object = {}) =>
    request(server)
      .post('/graphql')
      .set('content-type', 'application/json')
      .send({ query, variables });

  it('models and model(id)', async () => {
    const r = await gql(
      '{ models { id isDefault classes input { channels height width } } }',
    ).expect(200);
    expect(r.body.data.models.map((m: { id: string }) => m.id)).toContain('tiny@0.0.1');
    const m = await gql(
      'query($id: String!) { model(id: $id) { id solver { name steps tStar } oodThresholds { name } } }',
      {
        id: 'tiny@0.0.1',
      },
    ).expect(200);
    expect(m.body.data.model.solver.name).toBe('euler');
  });

  it('classify and features', async () => {
    const c = await gql(
      'query($images: [String!]!) { classify(images: $images, topK: 2) { model results { label index probability topK { label probability } } } }',
      { images: [b64, b64] },
    ).expect(200);
    expect(c.body.data.classify.model).toBe('tiny@0.0.1');
    expect(c.body.data.classify.results).toHaveLength(2);
    const f = await gql(
      'query($images: [String!]!) { features(model: "tiny", images: $images, t: 0.5, steps: 2, pool: 2) { model t shape vectors } }',
      { images: [b64] },
    ).expect(200);
    expect(f.body.data.features.shape).toEqual([1, 4]);
    expect(f.body.data.features.vectors[0]).toHaveLength(4);
  });

  it('errors carry the same code', async () => {
    const r = await gql('{ model(id: "nope") { id } }');
    expect(r.body.errors[0].extensions.code).toBe('MODEL_NOT_FOUND');
    const t2 = await gql(
      'query($images: [String!]!) { features(model: "tiny", images: $images, t: 2) { t } }',
      {
        images: [b64],
      },
    );
    expect(t2.body.errors[0].extensions.code).toBe('INVALID_T');
  });
});

describe('ops', () => {
  it('/health/live, /health/ready, /metrics, /docs', async () => {
    expect((await request(server).get('/health/live').expect(200)).body).toEqual({ status: 'ok' });
    const ready = await request(server).get('/health/ready').expect(200);
    expect(ready.body.checks.models.ok).toBe(true);
    const m = await request(server).get('/metrics').expect(200);
    expect(m.text).toMatch(/prg_http_request_duration_seconds_bucket\{.*route="\/classify"/);
    expect(m.text).toMatch(
      /prg_inference_batch_size_count\{model="tiny@0.0.1",op="classify"\} [1-9]/,
    );
    expect(m.text).toContain('prg_job_queue_depth');
    expect((await request(server).get('/docs').expect(200)).text).toMatch(/swagger/i);
    const docs = await request(server).get('/docs-json').expect(200);
    expect(Object.keys(docs.body.paths)).toEqual(
      expect.arrayContaining([
        '/classify',
        '/models',
        '/models/{id}',
        '/models/{id}/features',
        '/health/ready',
      ]),
    );
  });
});
