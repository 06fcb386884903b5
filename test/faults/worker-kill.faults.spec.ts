/**
 * A fine-tune worker SIGKILLed mid-epoch (the real trainer on a tiny model, the built worker
 * process, bull on the shared Redis under a key prefix of its own). bull's stalled check (lock
 * 10 s, checked every second here) hands the job to another worker, which resumes from the last
 * checkpoint; the job takes exactly as many optimizer steps as an uninterrupted run of the same
 * hyperparameters, its runs say what happened, and one model version is registered.
 */
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deletePrefix,
  redisAvailable,
  TEST_REDIS_URL,
  uniquePrefix,
} from '../../src/server/jobs/testing/redis-env';
import {
  hiddenEntries,
  JobView,
  killAll,
  Server,
  startServer,
  startWorker,
  tempRoot,
  TERMINAL,
  toyDatasetZip,
  uploadDataset,
  waitJob,
  waitReady,
} from './harness';

const prefix = uniquePrefix();
let root: string;
let env: Record<string, string>;
let api: Server;
let dataset: string;

/** 20 images, batch 2: 10 steps per epoch; 4 epochs of the flow phase after the head phase. */
const HYPERPARAMETERS = { epochs: 4, batchSize: 2, learningRate: 0.01, warmupEpochs: 0, seed: 7 };

async function createJob(): Promise<string> {
  const r = await fetch(`${api.url}/fine-tunes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny@0.0.1', dataset, hyperparameters: HYPERPARAMETERS }),
  });
  const body = (await r.json()) as { id: string };
  expect(r.status, JSON.stringify(body)).toBe(201);
  return body.id;
}

const terminal = (j: JobView) => TERMINAL.has(j.status);

beforeAll(async () => {
  ({ root, env } = await tempRoot('prg-faults-worker-'));
  env = {
    ...env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    // A training step blocks the worker's event loop, more so on a loaded machine: the lock must
    // outlast the longest step, or a live worker's job looks stalled (docs/reliability.md).
    JOB_LOCK_MS: '10000',
    JOB_STALLED_INTERVAL_MS: '1000',
  };
  api = await startServer({ ...env, WORKER: '0' });
  await waitReady(api);
  const up = await uploadDataset(api.url, await toyDatasetZip(10));
  expect(up.status).toBe(201);
  dataset = ((await up.json()) as { id: string }).id;
});

afterAll(async () => {
  await killAll();
  await deletePrefix(prefix);
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe.skipIf(!redisAvailable)('worker SIGKILLed mid-epoch (needs Redis)', () => {
  let uninterruptedSteps = 0;

  it('an uninterrupted run, for the step count', async () => {
    const w = await startWorker(env);
    const id = await createJob();
    const done = await waitJob(api.url, id, terminal);
    expect(done.status, done.error ?? '').toBe('succeeded');
    expect(done.runs.map((r) => r.outcome)).toEqual(['succeeded']);
    uninterruptedSteps = done.result!.steps!;
    expect(uninterruptedSteps).toBeGreaterThan(4 * 10 - 1); // the flow phase alone: 4 × 10
    await w.kill('SIGTERM');
  });

  it('resumes from its last checkpoint in another worker with the same number of steps', async () => {
    const a = await startWorker(env);
    const id = await createJob();
    // Mid-epoch after at least one epoch of the last phase was checkpointed.
    const before = await waitJob(
      api.url,
      id,
      (j) =>
        terminal(j) ||
        (j.history.length >= 1 && (j.progress?.step ?? 0) >= 2 && j.progress!.stepsPerEpoch > 0),
    );
    expect(before.status).toBe('running');
    await a.kill('SIGKILL');
    const b = await startWorker(env);
    const done = await waitJob(api.url, id, terminal);
    expect(done.status, done.error ?? '').toBe('succeeded');
    expect(done.result!.steps).toBe(uninterruptedSteps);
    expect(done.result!.resumedFromEpoch).toBeGreaterThanOrEqual(1);
    expect(done.history.map((h) => h.epoch)).toEqual(
      Array.from({ length: HYPERPARAMETERS.epochs }, (_, i) => done.history[0].epoch + i),
    );
    // The job's event history: the killed run lost, the next one on the other worker succeeded.
    expect(done.attempts).toBe(2);
    expect(done.runs.map((r) => r.outcome)).toEqual(['lost', 'succeeded']);
    expect(done.runs[0].worker).toMatch(new RegExp(`\\.${a.pid}$`));
    expect(done.runs[1].worker).toMatch(new RegExp(`\\.${b.pid}$`));
    // Exactly one model version from this job, nothing half-written beside it.
    const models = (await (await fetch(`${api.url}/models`)).json()) as {
      models: { id: string }[];
    };
    expect(models.models.map((m) => m.id).filter((m) => m.includes(id.slice(3)))).toEqual([
      done.result!.model,
    ]);
    expect(await hiddenEntries(env.MODELS_DIR)).toEqual([]);
  });
});
