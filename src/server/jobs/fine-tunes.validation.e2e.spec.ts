/**
 * One table of bad create-job inputs through both APIs: POST /fine-tunes and the createFineTune
 * mutation must answer each with the same status, code and message, and queue nothing. The rows
 * are inputs GraphQL's schema lets through (right types, wrong values); wrong types and unknown
 * fields are refused by the schema itself on GraphQL and by the ValidationPipe on REST.
 */
import { promises as fs } from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageFolderZip } from '../datasets/testing/fixtures';
import { createTestApp, TestApp } from '../testing/test-app';
import { fakeTrainer } from './testing/fake-trainer';
import { tempJobsEnv } from './testing/helpers';

const MAX_EPOCHS = 5;
const MAX_STEPS = 7;
let t: TestApp;
let root: string;
let dataset: string;
let smallDataset: string;
const http = () => request(t.app.getHttpServer());

beforeAll(async () => {
  root = await tempJobsEnv('prg-ft-validation-', { MAX_EPOCHS: String(MAX_EPOCHS) });
  delete process.env.REDIS_URL;
  t = await createTestApp(
    [{ name: 'tiny', version: '0.0.1' }],
    { maxSteps: MAX_STEPS },
    undefined,
    { trainer: fakeTrainer() },
  );
  const upload = async (zip: Buffer) =>
    (await http().post('/datasets').attach('file', zip, 'd.zip')).body.id as string;
  dataset = await upload(await imageFolderZip({ a: 2, b: 2, c: 2 }, { w: 8, h: 8 }));
  smallDataset = await upload(await imageFolderZip({ a: 1, b: 1 }, { w: 4, h: 4 }));
});

afterAll(async () => {
  delete process.env.MAX_EPOCHS;
  await t?.close();
  await fs.rm(root, { recursive: true, force: true });
});

type Input = Record<string, unknown>;
const hp = (h: Input) => (): Input => ({ model: 'tiny', dataset, hyperparameters: h });

/** [what, status, code, the input (a thunk: dataset ids exist only after beforeAll)] */
const TABLE: [string, number, string, () => Input][] = [
  ['epochs 0', 400, 'INVALID_HYPERPARAMETERS', hp({ epochs: 0 })],
  ['epochs above MAX_EPOCHS', 400, 'INVALID_HYPERPARAMETERS', hp({ epochs: MAX_EPOCHS + 1 })],
  ['steps above MAX_STEPS', 400, 'INVALID_HYPERPARAMETERS', hp({ steps: MAX_STEPS + 1 })],
  ['batchSize 0', 400, 'INVALID_HYPERPARAMETERS', hp({ batchSize: 0 })],
  ['learningRate 0', 400, 'INVALID_HYPERPARAMETERS', hp({ learningRate: 0 })],
  ['labelSmoothing 1', 400, 'INVALID_HYPERPARAMETERS', hp({ labelSmoothing: 1 })],
  ['tStar 1.5', 400, 'INVALID_HYPERPARAMETERS', hp({ tStar: 1.5 })],
  ['an adaptive solver', 400, 'INVALID_HYPERPARAMETERS', hp({ solver: 'dopri5' })],
  ['gradientMode reverse', 400, 'INVALID_HYPERPARAMETERS', hp({ gradientMode: 'reverse' })],
  [
    'warm-up longer than the run',
    400,
    'INVALID_HYPERPARAMETERS',
    hp({ epochs: 2, warmupEpochs: 3 }),
  ],
  ['an empty dataset id', 400, 'INVALID_HYPERPARAMETERS', () => ({ model: 'tiny', dataset: '' })],
  ['a bad name', 400, 'INVALID_HYPERPARAMETERS', () => ({ model: 'tiny', dataset, name: 'a b' })],
  [
    'oodDataset = dataset',
    400,
    'INVALID_HYPERPARAMETERS',
    () => ({ dataset, oodDataset: dataset }),
  ],
  ['an unknown model', 404, 'MODEL_NOT_FOUND', () => ({ model: 'nope', dataset })],
  ['an unknown dataset', 404, 'DATASET_NOT_FOUND', () => ({ dataset: 'ds_000000000000' })],
  [
    'an unknown evalDataset',
    404,
    'DATASET_NOT_FOUND',
    () => ({ dataset, evalDataset: 'ds_000000000000' }),
  ],
  ['images of another shape', 400, 'SHAPE_MISMATCH', () => ({ dataset: smallDataset })],
  [
    'evalDataset with other classes',
    400,
    'CLASS_MISMATCH',
    () => ({ dataset, evalDataset: smallDataset, hyperparameters: { allowResize: true } }),
  ],
];

describe('create-job validation, REST and GraphQL alike', () => {
  it.each(TABLE)('%s → %i %s on both', async (_what, status, code, input) => {
    const rest = await http().post('/fine-tunes').send(input());
    expect(rest.body).toMatchObject({ statusCode: status, code });
    expect(rest.status).toBe(status);

    const gql = await http()
      .post('/graphql')
      .send({
        query: 'mutation ($input: CreateFineTuneInput!) { createFineTune(input: $input) { id } }',
        variables: { input: input() },
      });
    expect(gql.body.data).toBeNull();
    expect(gql.body.errors).toHaveLength(1);
    expect(gql.body.errors[0].extensions).toMatchObject({ statusCode: status, code });
    expect(gql.body.errors[0].message).toBe(rest.body.message);
  });

  it('queued nothing', async () => {
    expect((await http().get('/fine-tunes')).body).toEqual([]);
  });
});
