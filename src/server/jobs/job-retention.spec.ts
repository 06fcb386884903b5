/**
 * JOBS_KEEP on both queues, driven directly (no app, a handler that only writes the job's files): the
 * newest N succeeded and the newest N failed/cancelled jobs stay, older finished jobs disappear from
 * get/list together with their checkpoint and staging dirs, and queued or running jobs are never
 * dropped. The bull queue runs on the real Redis (127.0.0.1:6379) under a unique key prefix.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullJobQueue } from './bull-queue';
import { FineTuneJobData, FineTuneJobView, JobHandler, JobQueue } from './fine-tune.types';
import { TERMINAL } from './fine-tune-status';
import { JobsConfig, loadJobsConfig } from './jobs.config';
import { MemoryJobQueue } from './memory-queue';
import { deletePrefix, redisAvailable, TEST_REDIS_URL, uniquePrefix } from './testing/redis-env';

let root: string;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'prg-jobs-keep-'));
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** A job the spec's handler ends as `outputName` says: succeed, fail, or wait for `release`. */
function jobData(config: JobsConfig, outcome: 'ok' | 'fail' | 'hold'): FineTuneJobData {
  const id = `ft_${randomBytes(6).toString('hex')}`;
  return {
    id,
    model: 'tiny@0.0.1',
    modelDir: path.join(root, 'models', 'tiny-0.0.1'),
    dataset: 'ds_x',
    datasetSpec: 'unused',
    hyperparameters: { epochs: 1 },
    outputName: outcome,
    outputVersion: '0.0.1',
    outputDir: path.join(root, 'models', `${id}-out`),
    stagingDir: path.join(root, 'models', `.staging-${id}`),
    checkpointDir: path.join(config.jobsDir, id, 'checkpoints'),
    createdAt: new Date().toISOString(),
  };
}

const exists = (p: string) =>
  fs.access(p).then(
    () => true,
    () => false,
  );
/** Both dirs a job leaves behind (checked together: either one left over is a leak). */
const filesOf = async (d: FineTuneJobData) => [
  await exists(path.dirname(d.checkpointDir)),
  await exists(d.stagingDir),
];

/** Polls until `until` holds (the deadline only guards against hanging). */
async function waitFor<T>(read: () => Promise<T>, until: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await read();
    if (until(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const finished = (q: JobQueue, id: string) =>
  waitFor(
    () => q.get(id),
    (j) => j !== null && TERMINAL.has(j.status) && j.finishedAt !== null,
  );
const listed = async (q: JobQueue) => (await q.list()).map((j: FineTuneJobView) => j.id).sort();

interface Kind {
  name: 'memory' | 'bull';
  open(config: JobsConfig): Promise<{ queue: JobQueue; dispose(): Promise<void> }>;
}

const kinds: Kind[] = [
  {
    name: 'memory',
    open: async (config) => {
      const queue = new MemoryJobQueue(config);
      return { queue, dispose: () => queue.close() };
    },
  },
  {
    name: 'bull',
    open: async (config) => {
      const queue = new BullJobQueue(config);
      await queue.ready();
      return {
        queue,
        dispose: async () => {
          await queue.close();
          await deletePrefix(config.prefix);
        },
      };
    },
  },
];

function retention(kind: Kind): void {
  let config: JobsConfig;
  let q: JobQueue;
  let dispose: () => Promise<void>;
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));

  // Writes both of the job's dirs, as the real handler does, and leaves them (as a failure does).
  const handler: JobHandler = async ({ data }) => {
    await fs.mkdir(data.checkpointDir, { recursive: true });
    await fs.mkdir(data.stagingDir, { recursive: true });
    if (data.outputName === 'hold') await held;
    if (data.outputName === 'fail') throw new Error('handler failure');
    return { model: 'tiny@x', modelDir: data.outputDir, metrics: {}, ood: { error: 'n/a' } };
  };

  beforeAll(async () => {
    config = loadJobsConfig(
      kind.name === 'bull' ? TEST_REDIS_URL : null,
      { JOBS_KEEP: '1', QUEUE_PREFIX: uniquePrefix(), JOBS_DIR: path.join(root, kind.name) },
      root,
    );
    ({ queue: q, dispose } = await kind.open(config));
    await q.startWorker({ 'fine-tune': handler });
  });

  afterAll(async () => {
    release();
    await dispose?.();
  });

  it('drops the older finished job of each outcome with its files; the newest stays', async () => {
    const a = jobData(config, 'fail');
    await q.add(a);
    expect(await finished(q, a.id)).toMatchObject({ status: 'failed' });
    expect(await filesOf(a)).toEqual([true, true]);

    const b = jobData(config, 'fail');
    await q.add(b);
    expect(await finished(q, b.id)).toMatchObject({ status: 'failed' });
    expect(await q.get(a.id)).toBeNull();
    expect(await listed(q)).toEqual([b.id]);
    // Bull drops a job's data in Redis first; its files go right after.
    await waitFor(
      () => filesOf(a),
      (f) => !f[0] && !f[1],
    );
    expect(await filesOf(b)).toEqual([true, true]);

    // Succeeded jobs are counted apart (bull's completed set): b, failed, is kept beside them.
    const c = jobData(config, 'ok');
    await q.add(c);
    await finished(q, c.id);
    const d = jobData(config, 'ok');
    await q.add(d);
    expect(await finished(q, d.id)).toMatchObject({ status: 'succeeded' });
    expect(await q.get(c.id)).toBeNull();
    expect(await listed(q)).toEqual([b.id, d.id].sort());
    await waitFor(
      () => filesOf(c),
      (f) => !f[0] && !f[1],
    );
    expect(await filesOf(b)).toEqual([true, true]);
  });

  if (kind.name === 'memory')
    it('never drops a queued or running job', async () => {
      const running = jobData(config, 'hold');
      await q.add(running);
      await waitFor(
        () => q.get(running.id),
        (j) => j?.status === 'running',
      );
      const [x, y, z] = [0, 1, 2].map(() => jobData(config, 'ok'));
      for (const j of [x, y, z]) await q.add(j);
      // Cancelling a queued job finishes it at once: x, then y, each push out the failed before.
      expect(await q.cancel(x.id)).toMatchObject({ status: 'cancelled' });
      expect(await q.cancel(y.id)).toMatchObject({ status: 'cancelled' });
      expect(await q.get(x.id)).toBeNull();
      expect((await q.get(running.id))?.status).toBe('running');
      expect((await q.get(z.id))?.status).toBe('queued');
      release();
      expect(await finished(q, z.id)).toMatchObject({ status: 'succeeded' });
      // It succeeded before z, which then pushed it out: finished, so no longer protected.
      expect(await q.get(running.id)).toBeNull();
      expect(await q.get(y.id)).toMatchObject({ status: 'cancelled' });
    });
}

describe.each(kinds.filter((k) => k.name !== 'bull'))('JOBS_KEEP=1 on the $name queue', retention);
describe.skipIf(!redisAvailable).each(kinds.filter((k) => k.name === 'bull'))(
  'JOBS_KEEP=1 on the $name queue (needs Redis)',
  retention,
);
