/**
 * POST /models/:id/samples and the GraphQL `samples` query: shapes, determinism by seed, the
 * same images on both APIs, and named 400s (the parity of bad input is in
 * validation-parity.e2e.spec.ts).
 */
import request from 'supertest';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, TestApp } from '../../src/server/testing/test-app';

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp([{ name: 'tiny', version: '0.0.1', classes: 3, seed: 1 }], {
    maxImages: 8,
    maxSteps: 20,
    defaultModel: 'tiny',
  });
});

afterAll(async () => {
  await t?.close();
});

const post = (body: object) =>
  request(t.app.getHttpServer()).post('/models/tiny/samples').send(body);

describe('POST /models/:id/samples', () => {
  it('answers a PNG grid of n images (8×8 each, 1-pixel gaps), with the settings in headers', async () => {
    const r = await post({ n: 6, steps: 2, seed: 3, scale: 2 })
      .buffer(true)
      .parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      })
      .expect(200);
    expect(r.headers['content-type']).toBe('image/png');
    expect(r.headers['x-seed']).toBe('3');
    expect(r.headers['x-steps']).toBe('2');
    expect(r.headers['x-solver']).toBe('euler');
    const meta = await sharp(r.body as Buffer).metadata();
    // ⌈√6⌉ = 3 columns, 2 rows: (3·8 + 2) × (2·8 + 1), scaled by 2.
    expect([meta.width, meta.height]).toEqual([52, 34]);
  });

  it('format=images: one PNG per image; the same seed gives the same images, another seed others', async () => {
    const a = await post({ n: 3, steps: 2, seed: 5, format: 'images' }).expect(200);
    expect(a.body).toMatchObject({ model: 'tiny@0.0.1', shape: [3, 1, 8, 8], seed: 5, steps: 2 });
    expect(a.body.images).toHaveLength(3);
    const meta = await sharp(Buffer.from(a.body.images[0], 'base64')).metadata();
    expect([meta.width, meta.height]).toEqual([8, 8]);
    const b = await post({ n: 3, steps: 2, seed: 5, format: 'images' }).expect(200);
    expect(b.body.images).toEqual(a.body.images);
    const c = await post({ n: 3, steps: 2, seed: 6, format: 'images' }).expect(200);
    expect(c.body.images).not.toEqual(a.body.images);
  });

  it('GraphQL samples returns the same images as REST for the same seed', async () => {
    const rest = await post({
      n: 2,
      steps: 3,
      solver: 'midpoint',
      seed: 9,
      format: 'images',
    }).expect(200);
    const gql = await request(t.app.getHttpServer())
      .post('/graphql')
      .send({
        query:
          '{ samples(model: "tiny", n: 2, steps: 3, solver: "midpoint", seed: 9) { model shape seed images } }',
      })
      .expect(200);
    expect(gql.body.errors).toBeUndefined();
    expect(gql.body.data.samples.shape).toEqual([2, 1, 8, 8]);
    expect(gql.body.data.samples.images).toEqual(rest.body.images);
  });

  it('names the problem: too many, a class label for an unconditional model, unknown model', async () => {
    const many = await post({ n: 9 }).expect(400);
    expect(many.body.code).toBe('TOO_MANY_SAMPLES');
    expect(many.body.message).toMatch(/MAX_IMAGES/);
    const cls = await post({ n: 1, classLabel: 0 }).expect(400);
    expect(cls.body.code).toBe('INVALID_CLASS_LABEL');
    expect(cls.body.message).toMatch(/tiny@0.0.1: the model is unconditional/);
    const unknown = await request(t.app.getHttpServer())
      .post('/models/nope/samples')
      .send({})
      .expect(404);
    expect(unknown.body.code).toBe('MODEL_NOT_FOUND');
  });
});
