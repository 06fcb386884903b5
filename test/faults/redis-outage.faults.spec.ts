/**
 * Redis stopped for OUTAGE_MS (the 20 s, scaled to 6 s here) during a fine-tune and
 * classify traffic, then started again (a redis-server of the suite's own with an append-only
 * file, on a free port; the shared one on 6379 is never touched). Classify keeps answering 200
 * (it does not need Redis), readiness reports the outage and recovers, the job finishes, run by
 * one worker at a time (its runs never overlap), with one model version.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  haveRedisServer,
  killAll,
  pngBase64,
  PrivateRedis,
  sleep,
  startServer,
  startWorker,
  tempRoot,
  TERMINAL,
  toyDatasetZip,
  until,
  uploadDataset,
  waitJob,
  waitReady,
} from './harness';

const OUTAGE_MS = 6000;
let root: string;
let redis: PrivateRedis;

beforeAll(async () => {
  if (!haveRedisServer()) return;
  ({ root } = await tempRoot('prg-faults-redis-'));
  redis = await PrivateRedis.create(path.join(root, 'redis'));
});
afterAll(async () => {
  await killAll();
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe.skipIf(!haveRedisServer())('Redis outage (needs redis-server)', () => {
  it('classify keeps working, readiness reports it, the job finishes once, one version', async () => {
    const { env: dirs } = await tempRoot('prg-faults-redis-dirs-');
    const env = {
      ...dirs,
      REDIS_URL: redis.url,
      QUEUE_PREFIX: 'faults',
      // Defaults as in production (a lock outlives the outage); stalled checks every second.
      JOB_STALLED_INTERVAL_MS: '1000',
    };
    const api = await startServer({ ...env, WORKER: '0' });
    await waitReady(api);
    const worker = await startWorker(env);
    const up = await uploadDataset(api.url, await toyDatasetZip(10));
    expect(up.status).toBe(201);
    const dataset = ((await up.json()) as { id: string }).id;
    const created = await fetch(`${api.url}/fine-tunes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tiny@0.0.1',
        dataset,
        hyperparameters: { epochs: 6, batchSize: 2, warmupEpochs: 0, seed: 3 },
      }),
    });
    expect(created.status).toBe(201);
    const id = ((await created.json()) as { id: string }).id;
    await waitJob(api.url, id, (j) => (j.progress?.step ?? 0) >= 1);

    // Classify traffic throughout.
    const body = JSON.stringify({ images: [await pngBase64(120)] });
    const classify: { at: number; status: number | string }[] = [];
    let stop = false;
    const t0 = Date.now();
    const traffic = (async () => {
      while (!stop) {
        const r = await fetch(`${api.url}/classify`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        }).then(
          async (x) => (await x.text(), x.status),
          (e: Error) => e.message,
        );
        classify.push({ at: Date.now() - t0, status: r });
        await sleep(50);
      }
    })();

    await sleep(500);
    await redis.stop();
    const down = await until(
      'readiness to report the outage',
      async () => {
        const r = await fetch(`${api.url}/health/ready`);
        const b = (await r.json()) as { checks: { redis?: { ok: boolean; detail: string } } };
        return r.status === 503 && b.checks.redis?.ok === false ? b : undefined;
      },
      OUTAGE_MS,
    );
    expect(down.checks.redis!.detail).toMatch(/redis unreachable/);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - t0 - 500)));
    await redis.start();
    await waitReady(api, 30_000);
    const done = await waitJob(api.url, id, (j) => TERMINAL.has(j.status), 240_000);
    stop = true;
    await traffic;

    expect(done.status, done.error ?? '').toBe('succeeded');
    // Never run twice at once: each run ended before the next began.
    for (let i = 1; i < done.runs.length; i++) {
      const prev = done.runs[i - 1] as { endedAt?: string };
      const next = done.runs[i] as unknown as { startedAt: string };
      expect(prev.endedAt, JSON.stringify(done.runs)).toBeDefined();
      expect(Date.parse(prev.endedAt!)).toBeLessThanOrEqual(Date.parse(next.startedAt));
    }
    expect(done.runs.at(-1)!.outcome).toBe('succeeded');
    // (A request naming the new version rescans MODELS_DIR, should the success event have been
    // published while the API's subscription was reconnecting.)
    expect(
      (await fetch(`${api.url}/models/${encodeURIComponent(done.result!.model)}`)).status,
    ).toBe(200);
    const models = (await (await fetch(`${api.url}/models`)).json()) as {
      models: { id: string }[];
    };
    expect(models.models.filter((m) => m.id.includes(id.slice(3))).map((m) => m.id)).toEqual([
      done.result!.model,
    ]);
    const failed = classify.filter((c) => c.status !== 200);
    console.log(
      `[faults] redis outage: ${JSON.stringify({ classify: classify.length, failed: failed.length, runs: done.runs.map((r) => r.outcome), attempts: done.attempts })}`,
    );
    expect(failed).toEqual([]);
    expect(classify.length).toBeGreaterThan(20);
    expect(worker.running).toBe(true);
    expect(api.proc.running).toBe(true);
  });
});
