/**
 * REST and GraphQL validate alike: one table of bad inputs, each sent as a REST body and as the
 * matching GraphQL query, must give the same status and code on both (both take the same
 * argument classes, src/server/schemas/inference-requests.ts). Before the redesign GraphQL took
 * raw arguments: classify(topK: 0) answered 200 with an empty list, topK: -1 every class but the
 * last, and steps: 0 or a bad solver got other codes than REST.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, TestApp, testPng } from '../../src/server/testing/test-app';

let t: TestApp;
let b64: string;

beforeAll(async () => {
  t = await createTestApp([{ name: 'tiny', version: '0.0.1', classes: 3, seed: 1 }], {
    maxImages: 2,
    maxSteps: 20,
    defaultModel: 'tiny',
  });
  b64 = (await testPng(8, 8, 1, 1)).toString('base64');
});

afterAll(async () => {
  await t?.close();
});

type Op = 'classify' | 'features';

interface Case {
  name: string;
  op: Op;
  /** Arguments besides `images` (and the features model), as REST body fields. */
  args: Record<string, unknown>;
  images?: string[];
  status: number;
  code: string;
}

const bad = (
  name: string,
  op: Op,
  args: Record<string, unknown>,
  status: number,
  code: string,
  images?: string[],
): Case => ({ name, op, args, status, code, images });

const CASES: Case[] = [
  bad('topK 0', 'classify', { topK: 0 }, 400, 'VALIDATION_FAILED'),
  bad('topK -1', 'classify', { topK: -1 }, 400, 'VALIDATION_FAILED'),
  bad('steps 0', 'classify', { steps: 0 }, 400, 'VALIDATION_FAILED'),
  bad('steps > MAX_STEPS', 'classify', { steps: 21 }, 400, 'INVALID_STEPS'),
  bad('unknown solver', 'classify', { solver: 'heun' }, 400, 'VALIDATION_FAILED'),
  bad('unknown model', 'classify', { model: 'nope' }, 404, 'MODEL_NOT_FOUND'),
  bad('no images', 'classify', {}, 400, 'NO_IMAGES', []),
  bad('too many images', 'classify', {}, 400, 'TOO_MANY_IMAGES', ['A', 'A', 'A']),
  bad('not base64', 'classify', {}, 400, 'INVALID_IMAGE', ['%%%']),
  bad('not an image', 'classify', {}, 400, 'INVALID_IMAGE', ['AAAA']),
  bad('t above 1', 'features', { t: 2 }, 400, 'INVALID_T'),
  bad('t 0', 'features', { t: 0 }, 400, 'INVALID_T'),
  bad('pool above the side', 'features', { pool: 9 }, 400, 'INVALID_POOL'),
  bad('pool 0', 'features', { pool: 0 }, 400, 'VALIDATION_FAILED'),
  bad('features steps 0', 'features', { steps: 0 }, 400, 'VALIDATION_FAILED'),
  // tiny is unconditional: a label has nothing to go to (conditional models: class-label.e2e).
  bad('classLabel, unconditional model', 'classify', { classLabel: 0 }, 400, 'INVALID_CLASS_LABEL'),
  bad(
    'features classLabel, unconditional',
    'features',
    { classLabel: 1 },
    400,
    'INVALID_CLASS_LABEL',
  ),
  bad('classLabel -1', 'classify', { classLabel: -1 }, 400, 'VALIDATION_FAILED'),
];

async function viaRest(c: Case): Promise<{ status: number; code: string }> {
  const body = { images: c.images ?? [b64], ...c.args };
  const url = c.op === 'classify' ? '/classify' : '/models/tiny/features';
  const r = await request(t.app.getHttpServer()).post(url).send(body);
  return { status: r.status, code: r.body.code };
}

/** The same arguments as GraphQL literals (JSON is valid GraphQL for numbers and strings). */
async function viaGraphql(c: Case): Promise<{ status: number; code: string }> {
  const args = Object.entries(c.args).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
  const all = ['images: $images', ...(c.op === 'features' ? ['model: "tiny"'] : []), ...args];
  const fields = c.op === 'classify' ? 'model results { label }' : 'model t';
  const query = `query($images: [String!]!) { ${c.op}(${all.join(', ')}) { ${fields} } }`;
  const r = await request(t.app.getHttpServer())
    .post('/graphql')
    .set('content-type', 'application/json')
    .send({ query, variables: { images: c.images ?? [b64] } });
  const err = r.body.errors?.[0];
  expect(err, `${c.name}: GraphQL answered ${JSON.stringify(r.body)}`).toBeDefined();
  return { status: err.extensions.statusCode, code: err.extensions.code };
}

describe('the same bad input gets the same status and code on REST and GraphQL', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const rest = await viaRest(c);
    expect(rest).toEqual({ status: c.status, code: c.code });
    expect(await viaGraphql(c)).toEqual(rest);
  });

  it('valid arguments answer on both, with the same classes', async () => {
    const rest = await request(t.app.getHttpServer())
      .post('/classify')
      .send({ images: [b64], topK: 2 })
      .expect(200);
    const gql = await request(t.app.getHttpServer())
      .post('/graphql')
      .send({
        query:
          'query($i: [String!]!) { classify(images: $i, topK: 2) { results { topK { label } } } }',
        variables: { i: [b64] },
      })
      .expect(200);
    expect(gql.body.data.classify.results[0].topK).toEqual(
      rest.body.results[0].topK.map((x: { label: string }) => ({ label: x.label })),
    );
  });

  it('GraphQL errors carry no server stack trace', async () => {
    const r = await request(t.app.getHttpServer())
      .post('/graphql')
      .send({ query: '{ classify(images: ["AAAA"], topK: 0) { model } }' });
    expect(r.body.errors[0].extensions.code).toBe('VALIDATION_FAILED');
    expect(r.body.errors[0].extensions.stacktrace).toBeUndefined();
  });
});
