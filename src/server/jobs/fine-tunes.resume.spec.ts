/**
 * Workers in separate processes against the real Redis: the API runs with WORKER=0 (producer only);
 * real worker processes (testing/worker-child.ts: the production WorkerModule with the fake trainer)
 * take the jobs.
 * - SIGKILL mid-job: bull's stalled check (lock 2 s here) hands the job to the next worker, which
 *   resumes from the last epoch checkpoint, not from zero.
 * - SIGTERM mid-job (graceful shutdown): the job goes straight back to the queue and resumes too.
 * - cancel from the API reaches the worker process over Redis pub/sub.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { AddressInfo, createServer } from 'node:net';
import * as path from 'node:path';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { imageFolderZip } from '../datasets/testing/fixtures';
import { createTestApp, TestApp } from '../testing/test-app';
import { FineTuneJobView } from './fine-tune.types';
import { tempJobsEnv, waitForJob } from './testing/helpers';
import { deletePrefix, redisAvailable, TEST_REDIS_URL, uniquePrefix } from './testing/redis-env';

const STEPS = 3;
let t: TestApp;
let root: string;
let dataset: string;
const prefix = uniquePrefix();
const children: ChildProcess[] = [];
const http = () => request(t.app.getHttpServer());
const terminal = (j: FineTuneJobView) => ['succeeded', 'failed', 'cancelled'].includes(j.status);

beforeAll(async () => {
  root = await tempJobsEnv('prg-ft-resume-', {
    QUEUE_PREFIX: prefix,
    // Short enough to keep the test quick after a SIGKILL, long enough for a busy machine to renew.
    JOB_LOCK_MS: '2000',
    JOB_STALLED_INTERVAL_MS: '500',
    WORKER: '0',
  });
  t = await createTestApp([{ name: 'tiny', version: '0.0.1' }], { redisUrl: TEST_REDIS_URL });
  const up = await http()
    .post('/datasets')
    .attach('file', await imageFolderZip({ a: 2, b: 2 }, { w: 8, h: 8 }), 'd.zip');
  dataset = up.body.id;
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

afterAll(async () => {
  await t?.close();
  await deletePrefix(prefix);
  await fs.rm(root, { recursive: true, force: true });
});

/** Starts a worker process; resolves when it takes jobs. */
async function startWorker(
  stepMs: number,
  env: Record<string, string> = {},
): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--require',
      path.join(__dirname, 'testing', 'swc-register.cjs'),
      path.join(__dirname, 'testing', 'worker-child.ts'),
    ],
    {
      env: {
        ...process.env,
        REDIS_URL: TEST_REDIS_URL,
        MODELS_DIR: t.modelsDir,
        WORKER: '1',
        PRG_WARMUP: '0',
        FAKE_STEP_MS: String(stepMs),
        FAKE_STEPS: String(STEPS),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) =>
      reject(new Error(`worker exited (${code}) before ready: ${stderr}`)),
    );
  });
  return child;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const exited = (c: ChildProcess) =>
  new Promise<number | null>((r) =>
    c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code)),
  );

async function createJob(epochs: number): Promise<string> {
  const res = await http()
    .post('/fine-tunes')
    .send({ model: 'tiny@0.0.1', dataset, hyperparameters: { epochs } });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

/** Past the end of epoch 2: epochs 1 and 2 are checkpointed. */
const pastEpoch2 = (j: FineTuneJobView) =>
  j.status === 'running' && (j.progress?.epoch ?? 0) >= 3 && (j.progress?.step ?? 0) >= 1;

describe.skipIf(!redisAvailable)('fine-tune workers in other processes (needs Redis)', () => {
  it('a job whose worker is SIGKILLed resumes from its last checkpoint in another worker', async () => {
    const a = await startWorker(60);
    const id = await createJob(5);
    const before = await waitForJob(t.app, id, pastEpoch2);
    expect(before.attempts).toBe(1);
    a.kill('SIGKILL');
    await exited(a);

    const port = await freePort();
    await startWorker(5, { WORKER_METRICS_PORT: String(port) });
    const done = await waitForJob(t.app, id, terminal);
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBe(2);
    // The worker process exports its job durations.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/prg_job_duration_seconds_count\{status="succeeded"\} 1/);
    // Resumed after epoch 2 or later (whatever was checkpointed when it died), not from zero.
    expect(done.result!.resumedFromEpoch).toBeGreaterThanOrEqual(2);
    expect(done.result!.resumedFromEpoch).toBeLessThan(5);
    expect(done.history.map((h) => h.epoch)).toEqual([1, 2, 3, 4, 5]);
    expect((await http().get(`/models/${encodeURIComponent(done.result!.model)}`)).status).toBe(
      200,
    );
  });

  it('SIGTERM returns the running job to the queue at once; the next worker resumes it', async () => {
    const a = await startWorker(60);
    const id = await createJob(5);
    await waitForJob(t.app, id, pastEpoch2);
    a.kill('SIGTERM');
    await exited(a);

    const requeued = await waitForJob(t.app, id, () => true);
    expect(requeued).toMatchObject({ status: 'queued', attempts: 1 });

    await startWorker(5);
    const done = await waitForJob(t.app, id, terminal);
    expect(done).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(done.result!.resumedFromEpoch).toBeGreaterThanOrEqual(2);
  });

  it('cancel from the API stops the job in the worker process', async () => {
    await startWorker(40);
    const id = await createJob(50);
    await waitForJob(t.app, id, (j) => (j.progress?.step ?? 0) >= 1);
    const res = await http().post(`/fine-tunes/${id}/cancel`);
    // 'cancelled' when the worker was quicker than this response.
    expect(['cancelling', 'cancelled']).toContain(res.body.status);
    const stepAtCancel = res.body.progress.epoch * STEPS + res.body.progress.step;
    const done = await waitForJob(t.app, id, terminal);
    expect(done.status).toBe('cancelled');
    expect(done.progress!.epoch * STEPS + done.progress!.step - stepAtCancel).toBeLessThanOrEqual(
      1,
    );
  });
});
