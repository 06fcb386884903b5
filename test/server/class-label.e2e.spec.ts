/**
 * Class-conditional models (manifest architecture.velocity.labels; docs/import.md): the server
 * feeds the null class unless a request gives `classLabel`; REST and GraphQL take the same
 * argument (src/server/schemas SolveArgs) and answer a bad one alike; an unconditional model
 * refuses it. Fine-tune jobs on an inference-only flow are refused unless they freeze it.
 */
import { promises as fs } from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageFolderZip } from '../../src/server/datasets/testing/fixtures';
import { fakeTrainer } from '../../src/server/jobs/testing/fake-trainer';
import { tempJobsEnv } from '../../src/server/jobs/testing/helpers';
import { createTestApp, TestApp, testPng } from '../../src/server/testing/test-app';

let t: TestApp;
let root: string;
let b64: string;
let dataset: string;
const http = () => request(t.app.getHttpServer());

beforeAll(async () => {
  root = await tempJobsEnv('prg-class-label-', {});
  delete process.env.REDIS_URL;
  t = await createTestApp(
    [
      { name: 'tiny', version: '0.0.1', classes: 2, seed: 1 },
      { name: 'cond', version: '0.0.1', classes: 2, seed: 2, labels: 3 },
      { name: 'frozen', version: '0.0.1', classes: 2, seed: 3, inferenceOnly: true },
    ],
    { maxSteps: 20, defaultModel: 'tiny' },
    undefined,
    { trainer: fakeTrainer() },
  );
  b64 = (await testPng(8, 8, 1, 1)).toString('base64');
  dataset = (
    await http()
      .post('/datasets')
      .attach('file', await imageFolderZip({ a: 2, b: 2 }, { w: 8, h: 8 }), 'd.zip')
  ).body.id as string;
});

afterAll(async () => {
  await t?.close();
  await fs.rm(root, { recursive: true, force: true });
});

const features = async (model: string, extra: Record<string, unknown> = {}) => {
  const r = await http()
    .post(`/models/${model}/features`)
    .send({ images: [b64], steps: 2, ...extra });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.vectors[0] as number[];
};

async function gqlError(query: string): Promise<{ status: number; code: string; message: string }> {
  const r = await http()
    .post('/graphql')
    .send({ query, variables: { i: [b64] } });
  const e = r.body.errors?.[0];
  expect(e, JSON.stringify(r.body)).toBeDefined();
  return { status: e.extensions.statusCode, code: e.extensions.code, message: e.message };
}

describe('classLabel on a class-conditional model', () => {
  it('features: the null class by default; another label gives other features', async () => {
    const dflt = await features('cond');
    expect(await features('cond', { classLabel: 3 })).toEqual(dflt); // 3 = the null class
    const one = await features('cond', { classLabel: 1 });
    expect(one).toHaveLength(dflt.length);
    expect(one).not.toEqual(dflt);
    // dopri5 runs the velocity step by step; it feeds the label too.
    const d0 = await features('cond', { solver: 'dopri5' });
    const d1 = await features('cond', { solver: 'dopri5', classLabel: 1 });
    expect(d1).not.toEqual(d0);
  });

  it('classify, ood and trajectory accept it', async () => {
    await http()
      .post('/classify')
      .send({ model: 'cond', images: [b64], classLabel: 2 })
      .expect(200);
    await http()
      .post('/models/cond/ood')
      .send({ images: [b64], classLabel: 0 })
      .expect(200);
    const a = await http()
      .post('/models/cond/trajectory')
      .send({ images: [b64], classLabel: 0, frames: 3, format: 'frames' })
      .expect(200);
    const b = await http()
      .post('/models/cond/trajectory')
      .send({ images: [b64], frames: 3, format: 'frames' })
      .expect(200);
    expect(a.body.frames[2]).not.toEqual(b.body.frames[2]);
  });

  it('GraphQL features take it and agree with REST', async () => {
    const r = await http()
      .post('/graphql')
      .send({
        query:
          'query($i: [String!]!) { features(model: "cond", images: $i, steps: 2, classLabel: 1) { vectors } }',
        variables: { i: [b64] },
      })
      .expect(200);
    const rest = await features('cond', { classLabel: 1 });
    const gql = r.body.data.features.vectors[0] as number[];
    gql.forEach((v, i) => expect(v).toBeCloseTo(rest[i], 5));
  });

  const BAD: [string, string, Record<string, unknown>, number, string, RegExp][] = [
    ['above the range', 'cond', { classLabel: 4 }, 400, 'INVALID_CLASS_LABEL', /\[0, 2\] or 3/],
    [
      'on an unconditional model',
      'tiny',
      { classLabel: 0 },
      400,
      'INVALID_CLASS_LABEL',
      /unconditional/,
    ],
    ['negative', 'cond', { classLabel: -1 }, 400, 'VALIDATION_FAILED', /classLabel/],
    ['not an integer', 'cond', { classLabel: 1.5 }, 400, 'VALIDATION_FAILED', /classLabel/],
  ];
  it.each(BAD)(
    '%s → the same 4xx on REST and GraphQL',
    async (_w, model, args, status, code, msg) => {
      const rest = await http()
        .post('/classify')
        .send({ model, images: [b64], ...args });
      expect(rest.status).toBe(status);
      expect(rest.body.code).toBe(code);
      expect(rest.body.message).toMatch(msg);
      const lit = Object.entries(args).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
      const gql = await gqlError(
        `query($i: [String!]!) { classify(model: "${model}", images: $i, ${lit.join(', ')}) { model } }`,
      );
      // GraphQL's schema refuses a non-integer Int itself (Apollo's own code).
      if (args.classLabel === 1.5) expect(gql.code).toBe('GRAPHQL_VALIDATION_FAILED');
      else expect({ status: gql.status, code: gql.code }).toEqual({ status, code });
    },
  );

  it('GET /models/:id shows the label range', async () => {
    const r = await http().get('/models/cond').expect(200);
    expect(r.body.manifest.architecture.velocity.labels).toEqual({ classes: 3, nullClass: 3 });
  });
});

describe('fine-tune jobs on an inference-only flow', () => {
  it('are refused naming the op unless the flow is frozen', async () => {
    const r = await http().post('/fine-tunes').send({ model: 'frozen', dataset });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('MODEL_NOT_TRAINABLE');
    expect(r.body.message).toMatch(/LayerNormalization.*freezeFlow: true/);
    const gql = await http()
      .post('/graphql')
      .send({
        query: 'mutation ($input: CreateFineTuneInput!) { createFineTune(input: $input) { id } }',
        variables: { input: { model: 'frozen', dataset } },
      });
    expect(gql.body.errors[0].extensions).toMatchObject({
      statusCode: 400,
      code: 'MODEL_NOT_TRAINABLE',
    });
    await http()
      .post('/fine-tunes')
      .send({ model: 'frozen', dataset, hyperparameters: { freezeFlow: true } })
      .expect(201);
  });
});
