/**
 * A latent model with the SD-VAE stage (prg import vae) served by the real app: it advertises
 * and takes RGB images of the stage's size (any upload size is resized), REST and GraphQL alike,
 * and /trajectory returns decoded RGB frames.
 */
import * as path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addVaeStage, importVae } from '../../src/prg/import';
import { createTinyModel } from '../../src/prg/testing/tiny-model';
import { createTestApp, TestApp, testPng } from '../../src/server/testing/test-app';

const FIX = path.join(__dirname, '..', 'fixtures', 'import');
let t: TestApp;
let server: Parameters<typeof request>[0];

beforeAll(async () => {
  t = await createTestApp([{ name: 'tiny', version: '0.0.1', classes: 3, seed: 1 }], {
    maxPixels: 300 * 300,
    maxFrames: 10,
    defaultModel: 'tiny',
  });
  server = t.app.getHttpServer();
  const dir = path.join(t.modelsDir, 'latent');
  await createTinyModel(dir, {
    name: 'latent',
    version: '1',
    inputShape: [4, 16, 16],
    featurePool: 4,
    classes: ['a', 'b'],
  });
  const vae = await importVae(path.join(FIX, 'vae-small.safetensors'), {
    latentSize: [16, 16],
    groups: 8,
    decoder: true,
  });
  await addVaeStage(dir, vae);
  await request(server).post('/models/rescan').expect(200);
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe('a model with a VAE stage', () => {
  it('advertises the image it takes and classifies uploads of other sizes (REST, GraphQL)', async () => {
    const m = await request(server).get('/models/latent').expect(200);
    expect(m.body.input).toMatchObject({ channels: 3, height: 64, width: 64 });
    const png = (await testPng(30, 20, 3, 4)).toString('base64');
    const c = await request(server)
      .post('/classify')
      .send({ model: 'latent', images: [png, png] })
      .expect(200);
    expect(c.body.model).toBe('latent@1');
    expect(c.body.results).toHaveLength(2);
    const g = await request(server)
      .post('/graphql')
      .send({
        query:
          'query($images: [String!]!) { classify(model: "latent", images: $images) { model results { probability } } }',
        variables: { images: [png] },
      })
      .expect(200);
    expect(g.body.errors).toBeUndefined();
    expect(g.body.data.classify.results[0].probability).toBeCloseTo(
      c.body.results[0].probability,
      5,
    );
    // Features live in latent space: 4 channels pooled to 2×2.
    const f = await request(server)
      .post('/models/latent/features')
      .send({ images: [png], pool: 2 })
      .expect(200);
    expect(f.body.shape).toEqual([1, 16]);
  });

  it('trajectory frames are decoded RGB images of the stage size', async () => {
    const png = (await testPng(64, 64, 3, 2)).toString('base64');
    const j = await request(server)
      .post('/models/latent/trajectory')
      .send({ images: [png], frames: 3, format: 'frames' })
      .expect(200);
    expect(j.body.frames).toHaveLength(3);
    const f0 = await sharp(Buffer.from(j.body.frames[2], 'base64')).metadata();
    expect([f0.width, f0.height, f0.channels]).toEqual([64, 64, 3]);
  });
});
