/**
 * The bull path against the real Redis (127.0.0.1:6379, unique key prefix per run, removed after):
 * the API with its in-process worker (WORKER on, the default) runs, streams, cancels and fails jobs
 * through Redis and pub/sub. Cross-process resume is in fine-tunes.resume.spec.ts.
 */
import { promises as fs } from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageFolderZip } from '../datasets/testing/fixtures';
import { createTestApp, TestApp } from '../testing/test-app';
import { FineTuneJobView, JOB_QUEUE, JobQueue } from './fine-tune.types';
import { fakeTrainer } from './testing/fake-trainer';
import { readSse, switchableTrainer, tempJobsEnv, waitForJob } from './testing/helpers';
import { deletePrefix, redisAvailable, TEST_REDIS_URL, uniquePrefix } from './testing/redis-env';

let t: TestApp;
let root: string;
let dataset: string;
const prefix = uniquePrefix();
const trainer = switchableTrainer(fakeTrainer());
const http = () => request(t.app.getHttpServer());
const terminal = (j: FineTuneJobView) => ['succeeded', 'failed', 'cancelled'].includes(j.status);

beforeAll(async () => {
  root = await tempJobsEnv('prg-ft-bull-', {
    QUEUE_PREFIX: prefix,
    // Nothing dies here: a long lock, so a loaded CI machine never makes a job look stalled.
    JOB_LOCK_MS: '10000',
    JOB_STALLED_INTERVAL_MS: '5000',
  });
  delete process.env.WORKER;
  t = await createTestApp(
    [{ name: 'tiny', version: '0.0.1' }],
    { redisUrl: TEST_REDIS_URL },
    undefined,
    { trainer: trainer.trainer },
  );
  const up = await http()
    .post('/datasets')
    .attach('file', await imageFolderZip({ a: 2, b: 2 }, { w: 8, h: 8 }), 'd.zip');
  expect(up.status).toBe(201);
  dataset = up.body.id;
});

afterAll(async () => {
  await t?.close();
  await deletePrefix(prefix);
  await fs.rm(root, { recursive: true, force: true });
});

describe.skipIf(!redisAvailable)('fine-tunes on bull (in-process worker; needs Redis)', () => {
  it('uses the bull queue', () => {
    expect(t.app.get<JobQueue>(JOB_QUEUE).kind).toBe('bull');
  });

  it('runs a job: state in Redis, events over pub/sub, the new version servable', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 20 }));
    const res = await http()
      .post('/fine-tunes')
      .send({ model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 2, seed: 3 } });
    expect(res.status).toBe(201);
    expect(res.body.status).toMatch(/queued|running/);
    const sse = await readSse(t.app, `/fine-tunes/${res.body.id}/events`);
    expect(sse.events[0].event).toBe('snapshot');
    expect(sse.events.filter((e) => e.event === 'progress').length).toBeGreaterThan(0);
    expect(sse.events.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } });

    const job = await waitForJob(t.app, res.body.id, terminal);
    expect(job).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(job.hyperparameters).toEqual({ epochs: 2, seed: 3 });
    expect(job.history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(job.result!.model).toBe(`tiny@0.0.1-ft.${job.id.slice(3)}`);
    expect((await http().get(`/models/${encodeURIComponent(job.result!.model)}`)).status).toBe(200);
    const list = await http().get('/fine-tunes');
    expect(list.body.map((j: FineTuneJobView) => j.id)).toContain(job.id);
  });

  it('cancels a running job within one step, and a queued one before it starts', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 4, stepDelayMs: 40 }));
    const post = () =>
      http()
        .post('/fine-tunes')
        .send({ model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 50 } });
    const a = await post();
    const b = await post();
    await waitForJob(t.app, a.body.id, (j) => (j.progress?.step ?? 0) >= 2);

    const cb = await http().post(`/fine-tunes/${b.body.id}/cancel`);
    expect(cb.body.status).toBe('cancelled');

    const ca = await http().post(`/fine-tunes/${a.body.id}/cancel`);
    expect(ca.status).toBe(200);
    expect(['cancelling', 'cancelled']).toContain(ca.body.status);
    const stepAtCancel = ca.body.progress.epoch * 4 + ca.body.progress.step;
    const done = await waitForJob(t.app, a.body.id, terminal);
    expect(done.status).toBe('cancelled');
    expect(done.progress!.epoch * 4 + done.progress!.step - stepAtCancel).toBeLessThanOrEqual(1);

    // The worker takes b next, sees the flag and drops it without running it.
    const bDone = await waitForJob(t.app, b.body.id, (j) => j.finishedAt !== null);
    expect(bDone).toMatchObject({ status: 'cancelled', attempts: 0, progress: null });
  });

  it('reports a failed job once (no retry of genuine failures)', async () => {
    trainer.set(fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 1, failAtStep: 2 }));
    const res = await http()
      .post('/fine-tunes')
      .send({ model: 'tiny@0.0.1', dataset, hyperparameters: { epochs: 2 } });
    const job = await waitForJob(t.app, res.body.id, terminal);
    expect(job).toMatchObject({ status: 'failed', attempts: 1 });
    expect(job.error).toContain('fake trainer failure at step 2');
  });

  it('exports queue depth', async () => {
    const metrics = await http().get('/metrics');
    expect(metrics.text).toMatch(
      /prg_job_queue_depth\{queue="fine-tunes",state="completed"\} [1-9]/,
    );
    expect(metrics.text).toMatch(/prg_job_queue_depth\{queue="fine-tunes",state="failed"\} [1-9]/);
  });
});
