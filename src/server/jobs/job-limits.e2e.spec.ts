/**
 * MAX_JOBS_PER_KEY: jobs queued or running per API key, on REST and GraphQL alike (in-process
 * queue, fake trainer). Another key has its own budget; a finished or cancelled job frees a slot.
 */
import { promises as fs } from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageFolderZip } from '../datasets/testing/fixtures';
import { createTestApp, TestApp } from '../testing/test-app';
import { FineTuneJobView } from './fine-tune.types';
import { fakeTrainer } from './testing/fake-trainer';
import { tempJobsEnv, waitForJob } from './testing/helpers';

const A = { 'x-api-key': 'job-limit-key-a' };
const B = { 'x-api-key': 'job-limit-key-b' };
let t: TestApp;
let root: string;
let dataset: string;
const http = () => request(t.app.getHttpServer());
const terminal = (j: FineTuneJobView) => ['succeeded', 'failed', 'cancelled'].includes(j.status);

beforeAll(async () => {
  root = await tempJobsEnv('prg-ft-limits-', { MAX_JOBS_PER_KEY: '2' });
  delete process.env.REDIS_URL;
  t = await createTestApp(
    [{ name: 'tiny', version: '0.0.1' }],
    { apiKeys: [A['x-api-key'], B['x-api-key']] },
    undefined,
    // Slow enough that the jobs stay queued or running while the test posts more.
    { trainer: fakeTrainer({ stepsPerEpoch: 5, stepDelayMs: 200 }) },
  );
  const up = await http()
    .post('/datasets')
    .set(A)
    .attach('file', await imageFolderZip({ a: 2, b: 2 }, { w: 8, h: 8 }), 'd.zip');
  expect(up.status).toBe(201);
  dataset = up.body.id;
});

afterAll(async () => {
  await t?.close();
  await fs.rm(root, { recursive: true, force: true });
});

const rest = (key: Record<string, string>) =>
  http()
    .post('/fine-tunes')
    .set(key)
    .send({ model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 20 } });

const gql = (key: Record<string, string>) =>
  http()
    .post('/graphql')
    .set(key)
    .send({
      query: `mutation($input: CreateFineTuneInput!) { createFineTune(input: $input) { id status } }`,
      variables: { input: { model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 20 } } },
    });

describe('MAX_JOBS_PER_KEY', () => {
  it('refuses a key its third unfinished job with 429 TOO_MANY_JOBS (REST and GraphQL)', async () => {
    // Sent at once: the per-key check is serialised, so exactly two get through.
    const first = await Promise.all([rest(A), rest(A), rest(A)]);
    expect(first.map((r) => r.status).sort()).toEqual([201, 201, 429]);
    const refused = first.find((r) => r.status === 429)!;
    expect(refused.body.code).toBe('TOO_MANY_JOBS');
    expect(refused.body.message).toMatch(/MAX_JOBS_PER_KEY=2/);

    const g = await gql(A);
    expect(g.body.errors[0].extensions).toMatchObject({ code: 'TOO_MANY_JOBS', statusCode: 429 });
    expect(g.body.data).toBeNull();

    // Another key has its own budget.
    expect((await gql(B)).body.data.createFineTune.id).toMatch(/^ft_/);
    expect((await rest(B)).status).toBe(201);
    expect((await rest(B)).status).toBe(429);

    // Cancelling one of A's frees a slot.
    const id = first.find((r) => r.status === 201)!.body.id as string;
    await http().post(`/fine-tunes/${id}/cancel`).set(A).expect(200);
    await waitForJob(t.app, id, terminal, A);
    expect((await rest(A)).status).toBe(201);

    // Clean up: cancel everything still going.
    const all = (await http().get('/fine-tunes').set(A)).body as FineTuneJobView[];
    for (const j of all.filter((x) => !terminal(x)))
      await http().post(`/fine-tunes/${j.id}/cancel`).set(A);
  });
});
