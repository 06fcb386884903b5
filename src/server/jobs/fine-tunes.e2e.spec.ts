/**
 * /fine-tunes and the GraphQL fine-tune operations end to end against the real app (createApp),
 * without Redis: the in-process queue, the fake trainer (testing/fake-trainer.ts, no learning), tiny
 * model fixtures and a tiny uploaded dataset. The bull path is in fine-tunes.bull.spec.ts.
 */
import { createClient } from 'graphql-ws';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idx, imageFolderZip } from '../datasets/testing/fixtures';
import { createTestApp, TestApp } from '../testing/test-app';
import { HealthService } from '../health/health.service';
import { InFlightRequests } from '../common/in-flight';
import { FineTuneJobView } from './fine-tune.types';
import { fakeTrainer } from './testing/fake-trainer';
import { readSse, switchableTrainer, tempJobsEnv, waitForJob } from './testing/helpers';

const KEY = { 'x-api-key': 'fine-tune-test-key' };
let t: TestApp;
let root: string;
let dataset: string;
let smallDataset: string;
const trainer = switchableTrainer(fakeTrainer());

const http = () => request(t.app.getHttpServer());
const terminal = (j: FineTuneJobView) => ['succeeded', 'failed', 'cancelled'].includes(j.status);

beforeAll(async () => {
  root = await tempJobsEnv('prg-ft-');
  delete process.env.REDIS_URL;
  t = await createTestApp(
    [{ name: 'tiny', version: '0.0.1' }],
    { apiKeys: [KEY['x-api-key']] },
    undefined,
    { trainer: trainer.trainer },
  );
  const up = await http()
    .post('/datasets')
    .set(KEY)
    .attach('file', await imageFolderZip({ a: 2, b: 2, c: 2 }, { w: 8, h: 8 }), 'd.zip');
  expect(up.status).toBe(201);
  dataset = up.body.id;
  const small = await http()
    .post('/datasets')
    .set(KEY)
    .attach('file', await imageFolderZip({ a: 1, b: 1 }, { w: 4, h: 4 }), 'd.zip');
  smallDataset = small.body.id;
});

afterAll(async () => {
  await t?.close();
  await fs.rm(root, { recursive: true, force: true });
});

describe('REST /fine-tunes (in-process queue)', () => {
  it('runs a job to the end: per-step progress, per-epoch history, a new servable model version', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 3, stepDelayMs: 2 }));
    const res = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny', dataset, hyperparameters: { epochs: 2, learningRate: 0.001 } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ model: 'tiny@0.0.1', dataset, status: expect.any(String) });
    expect(res.body.id).toMatch(/^ft_[0-9a-f]{12}$/);

    const job = await waitForJob(t.app, res.body.id, terminal, KEY);
    expect(job.status).toBe('succeeded');
    expect(job.attempts).toBe(1);
    expect(job.progress).toMatchObject({ epoch: 2, epochs: 2, step: 3, progress: 1 });
    expect(job.history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(job.result?.model).toBe(`tiny@0.0.1-ft.${res.body.id.slice(3)}`);
    expect(job.finishedAt).not.toBeNull();

    // Servable at once: the registry rescanned on the success event.
    const m = await http().get(`/models/${encodeURIComponent(job.result!.model)}`);
    expect(m.status).toBe(200);
    // Checkpoints and the staging dir are gone after success.
    await expect(fs.access(path.join(root, 'jobs', job.id))).rejects.toThrow();
    expect((await fs.readdir(t.modelsDir)).filter((n) => n.startsWith('.'))).toEqual([]);
    // The OOD fit ran (6 images are too few to hold out enough: reported, not fatal).
    expect(job.result!.ood).toEqual({ error: expect.stringMatching(/held-out/) });

    const list = await http().get('/fine-tunes').set(KEY);
    expect(list.body.map((j: FineTuneJobView) => j.id)).toContain(job.id);

    const metrics = await http().get('/metrics');
    expect(metrics.text).toMatch(/prg_job_duration_seconds_count\{status="succeeded"\} [1-9]/);
    expect(metrics.text).toMatch(
      /prg_job_queue_depth\{queue="fine-tunes",state="completed"\} [1-9]/,
    );
  });

  it('names the classes of a model fine-tuned on an IDX upload that named them', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 1, stepDelayMs: 1 }));
    const n = 6;
    const up = await http()
      .post('/datasets')
      .set(KEY)
      .attach('images', idx([n, 8, 8], new Uint8Array(n * 64)), 'images.idx')
      .attach('labels', idx([n], [0, 1, 2, 0, 1, 2]), 'labels.idx')
      .field('classes', 'cat,dog,bird');
    expect(up.status).toBe(201);
    const res = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny@0.0.1', dataset: up.body.id, hyperparameters: { epochs: 1 } });
    const job = await waitForJob(t.app, res.body.id, terminal, KEY);
    expect(job.status).toBe('succeeded');
    const m = await http().get(`/models/${encodeURIComponent(job.result!.model)}`);
    expect(m.body.classes).toEqual(['cat', 'dog', 'bird']);
  });

  it('streams events over SSE until the job ends', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 20 }));
    const res = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 2 } });
    const sse = await readSse(t.app, `/fine-tunes/${res.body.id}/events`, KEY);
    expect(sse.status).toBe(200);
    expect(sse.contentType).toMatch(/^text\/event-stream/);
    expect(sse.events[0].event).toBe('snapshot');
    const progress = sse.events.filter((e) => e.event === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)!.data).toMatchObject({ progress: { epoch: 2, step: 2 } });
    expect(sse.events.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } });

    // A finished job: the snapshot, then the stream ends.
    const again = await readSse(t.app, `/fine-tunes/${res.body.id}/events`, KEY);
    expect(again.events).toHaveLength(1);
    expect(again.events[0]).toMatchObject({ event: 'snapshot', data: { status: 'succeeded' } });
  });

  it('cancels a running job within one step and drops a queued one', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 4, stepDelayMs: 30 }));
    const a = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny', dataset, hyperparameters: { epochs: 50 } });
    const b = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny', dataset, hyperparameters: { epochs: 50 } });
    await waitForJob(t.app, a.body.id, (j) => (j.progress?.step ?? 0) >= 2, KEY);

    // Queued job b: cancelled at once, never runs.
    const cb = await http().post(`/fine-tunes/${b.body.id}/cancel`).set(KEY);
    expect(cb.status).toBe(200);
    expect(cb.body.status).toBe('cancelled');

    const ca = await http().post(`/fine-tunes/${a.body.id}/cancel`).set(KEY);
    expect(ca.status).toBe(200);
    expect(['cancelling', 'cancelled']).toContain(ca.body.status);
    const stepAtCancel = ca.body.progress.epoch * 4 + ca.body.progress.step;
    const done = await waitForJob(t.app, a.body.id, terminal, KEY);
    expect(done.status).toBe('cancelled');
    // Within one step: at most the step in flight when cancel arrived is reported after it.
    expect(done.progress!.epoch * 4 + done.progress!.step - stepAtCancel).toBeLessThanOrEqual(1);
    expect(done.result).toBeNull();

    const bAfter = await waitForJob(t.app, b.body.id, () => true, KEY);
    expect(bAfter).toMatchObject({ status: 'cancelled', attempts: 0 });

    const again = await http().post(`/fine-tunes/${a.body.id}/cancel`).set(KEY);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('FINE_TUNE_FINISHED');
  });

  it('reports a failing trainer as a failed job with its message', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 1, failAtStep: 3 }));
    const res = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny', dataset, hyperparameters: { epochs: 3 } });
    const job = await waitForJob(t.app, res.body.id, terminal, KEY);
    expect(job.status).toBe('failed');
    expect(job.error).toContain('fake trainer failure at step 3');
    expect(job.history.map((h) => h.epoch)).toEqual([1]);
  });

  it('validates before queueing: model, dataset, shape, hyperparameters', async () => {
    const post = (body: object) => http().post('/fine-tunes').set(KEY).send(body);
    const unknownModel = await post({ model: 'nope', dataset });
    expect(unknownModel.status).toBe(404);
    expect(unknownModel.body.code).toBe('MODEL_NOT_FOUND');

    const unknownDataset = await post({ model: 'tiny', dataset: 'ds_000000000000' });
    expect(unknownDataset.status).toBe(404);
    expect(unknownDataset.body.code).toBe('DATASET_NOT_FOUND');

    const shape = await post({ model: 'tiny', dataset: smallDataset });
    expect(shape.status).toBe(400);
    expect(shape.body.code).toBe('SHAPE_MISMATCH');
    expect(shape.body.message).toMatch(
      /1×4×4 .* takes 1×8×8; set hyperparameters.allowResize=true/,
    );

    trainer.set(fakeTrainer({ stepsPerEpoch: 1, stepDelayMs: 1 }));
    const resized = await post({
      model: 'tiny',
      dataset: smallDataset,
      hyperparameters: { epochs: 1, allowResize: true },
    });
    expect(resized.status).toBe(201);
    await waitForJob(t.app, resized.body.id, terminal, KEY);

    const otherClasses = await post({ model: 'tiny', dataset, evalDataset: smallDataset });
    expect(otherClasses.status).toBe(400);
    const evalMismatch = await post({
      model: 'tiny',
      dataset,
      evalDataset: smallDataset,
      hyperparameters: { allowResize: true },
    });
    expect(evalMismatch.status).toBe(400);
    expect(evalMismatch.body.code).toBe('CLASS_MISMATCH');
    const unknownEval = await post({ model: 'tiny', dataset, evalDataset: 'ds_000000000000' });
    expect(unknownEval.status).toBe(404);
    const oodSame = await post({ model: 'tiny', dataset, oodDataset: dataset });
    expect(oodSame.status).toBe(400);
    expect(oodSame.body.message).toMatch(/oodDataset: images to flag, so not the training dataset/);
    const oodShape = await post({ model: 'tiny', dataset, oodDataset: smallDataset });
    expect(oodShape.status).toBe(400);
    expect(oodShape.body.code).toBe('SHAPE_MISMATCH');
    const unknownOod = await post({ model: 'tiny', dataset, oodDataset: 'ds_000000000000' });
    expect(unknownOod.status).toBe(404);

    const bad = await post({
      model: 'tiny',
      dataset,
      hyperparameters: { epochs: 0, learningRate: -1, solver: 'dopri5', tStar: 1.5, momentum: 0.9 },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('INVALID_HYPERPARAMETERS');
    for (const k of [
      'epochs=0',
      'learningRate=-1',
      'solver="dopri5"',
      'tStar=1.5',
      'momentum: unknown',
    ])
      expect(bad.body.message).toContain(`hyperparameters.${k}`);

    const warm = await post({
      model: 'tiny',
      dataset,
      hyperparameters: { epochs: 2, warmupEpochs: 3 },
    });
    expect(warm.status).toBe(400);

    const missing = await post({ model: 'tiny' });
    expect(missing.status).toBe(400);
    expect(missing.body.message).toMatch(/dataset/);

    // No model: the default model (here the only one).
    trainer.set(fakeTrainer({ stepsPerEpoch: 1, stepDelayMs: 1 }));
    const byDefault = await post({ dataset, hyperparameters: { epochs: 1 } });
    expect(byDefault.status).toBe(201);
    expect(byDefault.body.model).toBe('tiny@0.0.1');
    await waitForJob(t.app, byDefault.body.id, terminal, KEY);
  });

  it('404s unknown jobs on every route, and needs the API key', async () => {
    for (const [method, url] of [
      ['get', '/fine-tunes/ft_000000000000'],
      ['get', '/fine-tunes/ft_000000000000/events'],
      ['post', '/fine-tunes/ft_000000000000/cancel'],
    ] as const) {
      const res = await http()[method](url).set(KEY);
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('FINE_TUNE_NOT_FOUND');
    }
    const noKey = await http().post('/fine-tunes').send({ model: 'tiny', dataset });
    expect(noKey.status).toBe(401);
    expect((await http().get('/fine-tunes')).status).toBe(401);
  });

  it('refuses to delete a dataset a queued or running job reads', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 30 }));
    const res = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny', dataset, hyperparameters: { epochs: 20 } });
    const del = await http().delete(`/datasets/${dataset}`).set(KEY);
    expect(del.status).toBe(409);
    expect(del.body.code).toBe('DATASET_IN_USE');
    expect(del.body.message).toContain(res.body.id);
    await http().post(`/fine-tunes/${res.body.id}/cancel`).set(KEY);
    await waitForJob(t.app, res.body.id, terminal, KEY);
  });
});

describe('GraphQL fine-tunes', () => {
  const gql = (query: string, variables: object = {}) =>
    http().post('/graphql').set(KEY).send({ query, variables });
  const FIELDS = `id status model dataset attempts error
    hyperparameters { epochs allowResize }
    progress { epoch epochs step stepsPerEpoch progress loss }
    history { epoch loss metrics { name value } }
    result { model resumedFromEpoch metrics { name value } }`;

  it('createFineTune, fineTune, fineTunes, cancelFineTune', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 2 }));
    const created = await gql(
      `mutation ($input: CreateFineTuneInput!) { createFineTune(input: $input) { ${FIELDS} } }`,
      { input: { model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 1 } } },
    );
    expect(created.body.errors).toBeUndefined();
    const id = created.body.data.createFineTune.id as string;
    expect(created.body.data.createFineTune.hyperparameters).toEqual({
      epochs: 1,
      allowResize: null,
    });
    await waitForJob(t.app, id, terminal, KEY);

    const one = await gql(`query ($id: ID!) { fineTune(id: $id) { ${FIELDS} } }`, { id });
    expect(one.body.data.fineTune).toMatchObject({
      id,
      status: 'succeeded',
      model: 'tiny@0.0.1',
      history: [{ epoch: 1 }],
      result: { model: `tiny@0.0.1-ft.${id.slice(3)}` },
    });
    const all = await gql(`{ fineTunes { id status } }`);
    expect(all.body.data.fineTunes.map((j: { id: string }) => j.id)).toContain(id);

    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 30 }));
    const long = await gql(
      `mutation ($input: CreateFineTuneInput!) { createFineTune(input: $input) { id } }`,
      { input: { model: 'tiny', dataset, hyperparameters: { epochs: 30 } } },
    );
    const longId = long.body.data.createFineTune.id as string;
    await waitForJob(t.app, longId, (j) => j.status === 'running', KEY);
    const cancelled = await gql(`mutation ($id: ID!) { cancelFineTune(id: $id) { id status } }`, {
      id: longId,
    });
    expect(['cancelling', 'cancelled']).toContain(cancelled.body.data.cancelFineTune.status);
    expect((await waitForJob(t.app, longId, terminal, KEY)).status).toBe('cancelled');
  });

  it('subscription fineTuneEvents streams a job over graphql-ws (API key in connection params)', async () => {
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const WebSocket = createRequire(__filename)('ws') as unknown;
    const client = (key?: string) =>
      createClient({
        url: `ws://127.0.0.1:${port}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: key ? { 'x-api-key': key } : {},
        retryAttempts: 0,
      });
    const query = `subscription ($id: ID!) {
      fineTuneEvents(id: $id) { type jobId status progress { epoch step progress } } }`;

    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 20 }));
    const res = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 2 } });
    const c = client(KEY['x-api-key']);
    const events: { type: string; status?: string; progress?: { epoch: number } }[] = [];
    for await (const r of c.iterate<{ fineTuneEvents: (typeof events)[number] }>({
      query,
      variables: { id: res.body.id },
    })) {
      expect(r.errors).toBeUndefined();
      events.push(r.data!.fineTuneEvents);
    }
    await c.dispose();
    expect(events[0].type).toBe('snapshot');
    expect(events.filter((e) => e.type === 'progress').length).toBeGreaterThan(0);
    expect(events.at(-1)).toMatchObject({ type: 'status', status: 'succeeded' });

    const anon = client();
    const it = anon.iterate({ query, variables: { id: res.body.id } });
    const first = await it.next();
    expect(
      (first.value as { errors: { extensions: { code: string } }[] }).errors[0].extensions.code,
    ).toBe('UNAUTHORIZED');
    await anon.dispose();
  });

  it('reports validation errors with their code', async () => {
    const res = await gql(
      `mutation ($input: CreateFineTuneInput!) { createFineTune(input: $input) { id } }`,
      { input: { model: 'nope', dataset } },
    );
    expect(res.body.errors[0].extensions.code).toBe('MODEL_NOT_FOUND');
    const hp = await gql(
      `mutation ($input: CreateFineTuneInput!) { createFineTune(input: $input) { id } }`,
      { input: { model: 'tiny', dataset, hyperparameters: { batchSize: 0 } } },
    );
    expect(hp.body.errors[0].extensions.code).toBe('INVALID_HYPERPARAMETERS');
    const nf = await gql(`{ fineTune(id: "ft_000000000000") { id } }`);
    expect(nf.body.errors[0].extensions.code).toBe('FINE_TUNE_NOT_FOUND');
  });
});

describe('OpenAPI', () => {
  it('documents the dataset and fine-tune routes with their response shapes', async () => {
    const doc = (await http().get('/docs-json')).body as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      components: { schemas: Record<string, unknown> };
    };
    for (const [p, m] of [
      ['/datasets', 'post'],
      ['/datasets', 'get'],
      ['/datasets/{id}', 'delete'],
      ['/fine-tunes', 'post'],
      ['/fine-tunes/{id}', 'get'],
      ['/fine-tunes/{id}/events', 'get'],
      ['/fine-tunes/{id}/cancel', 'post'],
    ])
      expect(doc.paths[p]?.[m], `${m} ${p}`).toBeDefined();
    expect(JSON.stringify(doc.paths['/datasets'].post.responses['201'])).toContain(
      'DatasetResponse',
    );
    expect(JSON.stringify(doc.paths['/fine-tunes'].post.responses['201'])).toContain(
      'FineTuneJobResponse',
    );
    expect(doc.components.schemas).toHaveProperty('FineTuneProgressDto');
  });
});

describe('shutdown', () => {
  it('ends open event streams when the server drains, so they do not hold the drain', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 30 }));
    const res = await http()
      .post('/fine-tunes')
      .set(KEY)
      .send({ model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 100 } });
    const sse = readSse(t.app, `/fine-tunes/${res.body.id}/events`, KEY);
    await waitForJob(t.app, res.body.id, (j) => (j.progress?.step ?? 0) >= 1, KEY);
    const health = t.app.get(HealthService);
    expect(t.app.get(InFlightRequests).count).toBeGreaterThan(0);
    // drain() resolves true only once no request is in flight: the SSE stream has ended.
    expect(await health.drain(60_000)).toBe(true);
    const { events } = await sse;
    expect(events[0].event).toBe('snapshot');
    expect(
      events.some(
        (e) => e.event === 'status' && (e.data as { status: string }).status === 'succeeded',
      ),
    ).toBe(false);
    await http().post(`/fine-tunes/${res.body.id}/cancel`).set(KEY);
  });
});
