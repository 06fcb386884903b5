/**
 * API keys, rate limits, readiness with Redis configured, graceful shutdown: each against the
 * real app with its own configuration.
 */
import { writeFile } from 'node:fs/promises';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { PrgModelApi } from '../../src/prg/inference-api';
import { createTinyModel } from '../../src/prg/testing/tiny-model';
import { testConfig } from '../../src/server/config/config';
import { redisAvailable, TEST_REDIS_URL } from '../../src/server/jobs/testing/redis-env';
import { InFlightRequests } from '../../src/server/common/in-flight';
import { HealthService } from '../../src/server/health/health.service';
import { MetricsService } from '../../src/server/metrics/metrics.service';
import { MlService } from '../../src/server/ml/ml.service';
import { defaultModelLoader } from '../../src/server/ml/model-loader';
import { WorkerPoolModel } from '../../src/server/ml/worker-pool-model';
import { createTestApp, TestApp, testPng } from '../../src/server/testing/test-app';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('API keys', () => {
  it('with PRG_API_KEYS set, guarded routes need a valid x-api-key; inference stays open', async () => {
    t = await createTestApp([{ name: 'tiny' }], { apiKeys: ['secret-key-1', 'secret-key-2'] });
    const s = t.app.getHttpServer();
    const none = await request(s).post('/models/rescan');
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ code: 'UNAUTHORIZED', message: 'missing header x-api-key' });
    const bad = await request(s).post('/models/rescan').set('x-api-key', 'wrong-key-000');
    expect(bad.body).toMatchObject({ statusCode: 401, message: 'invalid x-api-key' });
    await request(s).post('/models/rescan').set('x-api-key', 'secret-key-2').expect(200);
    // Uploads and jobs (datasets, fine-tunes modules) reuse the same guard.
    expect((await request(s).delete('/datasets/none')).status).toBe(401);
    expect((await request(s).get('/fine-tunes')).status).toBe(401);
    await request(s).get('/fine-tunes').set('x-api-key', 'secret-key-1').expect(200);
    const png = (await testPng(8, 8)).toString('base64');
    await request(s)
      .post('/classify')
      .send({ images: [png] })
      .expect(200);
  });
});

describe('rate limit', () => {
  it('a client over its burst gets 429 with Retry-After; another client is unaffected', async () => {
    t = await createTestApp([{ name: 'tiny' }], { rateLimitRps: 0.001, rateLimitBurst: 2 });
    const s = t.app.getHttpServer();
    const png = (await testPng(8, 8)).toString('base64');
    const send = (key?: string) => {
      const r = request(s).post('/classify');
      if (key) r.set('x-api-key', key);
      return r.send({ images: [png] });
    };
    expect((await send()).status).toBe(200);
    expect((await send()).status).toBe(200);
    const over = await send();
    expect(over.status).toBe(429);
    expect(over.body.code).toBe('RATE_LIMITED');
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    expect((await send('another-client')).status).toBe(200);
    // GraphQL inference shares the buckets: the same IP is still over its limit.
    const g = await request(s)
      .post('/graphql')
      .set('content-type', 'application/json')
      .send({ query: `{ classify(images: ["${png}"]) { model } }` });
    expect(g.body.errors[0].extensions.code).toBe('RATE_LIMITED');
    // Cheap routes are not limited.
    await request(s).get('/models').expect(200);
  });
});

describe('readiness', () => {
  it.skipIf(!redisAvailable)(
    'with REDIS_URL: ready when Redis answers PING (the real Redis), 503 naming it when not (needs Redis)',
    async () => {
      t = await createTestApp([{ name: 'tiny' }], { redisUrl: TEST_REDIS_URL });
      const r = await request(t.app.getHttpServer()).get('/health/ready');
      expect(r.body.checks.redis).toEqual({ ok: true, detail: 'PING → PONG' });
      expect(r.status).toBe(200);
      // Unreachable Redis, on the service alone (the jobs module would also try to connect).
      const ml = {
        modelsReadiness: () => ({ ok: true, detail: '1 model(s), default x', count: 1 }),
      } as unknown as MlService;
      const h = new HealthService(
        testConfig({ redisUrl: 'redis://127.0.0.1:1' }),
        ml,
        new MetricsService(),
        new InFlightRequests(),
      );
      const bad = await h.readiness();
      expect(bad.ready).toBe(false);
      expect(bad.checks.redis.ok).toBe(false);
      expect(bad.checks.redis.detail).toMatch(/redis unreachable/);
      h.onApplicationShutdown();
    },
  );

  it('503 with no model under MODELS_DIR, and inference says so', async () => {
    t = await createTestApp([]);
    const s = t.app.getHttpServer();
    expect((await request(s).get('/health/ready')).status).toBe(503);
    const r = await request(s)
      .post('/classify')
      .send({ images: ['AAAA'] });
    expect(r.status).toBe(503);
    expect(r.body.code).toBe('NO_MODELS');
  });
});

describe('inference in worker threads (PRG_INFERENCE_WORKERS)', () => {
  it('two workers give the same results as the main thread, for every operation', async () => {
    const png = (await testPng(8, 8, 1, 4)).toString('base64');
    const body = { images: [png, png] };
    const results = [];
    for (const inferenceWorkers of [0, 2]) {
      t = await createTestApp([{ name: 'tiny', seed: 3 }], { inferenceWorkers, warmup: 'all' });
      const s = t.app.getHttpServer();
      const c = await request(s).post('/classify').send(body).expect(200);
      const f = await request(s).post('/models/tiny/features').send(body).expect(200);
      const o = await request(s).post('/models/tiny/ood').send(body).expect(200);
      const j = await request(s)
        .post('/models/tiny/trajectory')
        .send({ images: [png], frames: 3, format: 'frames' })
        .expect(200);
      // Concurrent requests spread over the workers.
      const many = await Promise.all(
        Array.from({ length: 6 }, () =>
          request(s)
            .post('/classify')
            .send({ images: [png] }),
        ),
      );
      expect(many.map((r) => r.status)).toEqual(Array(6).fill(200));
      const model = await t.app.get(MlService).loadedModel('tiny@0.0.1');
      expect(model instanceof WorkerPoolModel).toBe(inferenceWorkers > 0);
      results.push({ c: c.body, f: f.body, o: o.body, j: j.body });
      await t.close();
      t = undefined;
    }
    const [main, workers] = results;
    expect(workers.c.results.map((r: { index: number }) => r.index)).toEqual(
      main.c.results.map((r: { index: number }) => r.index),
    );
    // Same graphs, but ORT with 1 thread (workers) vs 2 may sum in another order: float32 noise.
    main.c.results[0].topK.forEach((x: { probability: number }, i: number) =>
      expect(workers.c.results[0].topK[i].probability).toBeCloseTo(x.probability, 5),
    );
    main.f.vectors[0].forEach((v: number, i: number) =>
      expect(workers.f.vectors[0][i]).toBeCloseTo(v, 4),
    );
    expect(Object.keys(workers.o.results[0].scores)).toEqual(Object.keys(main.o.results[0].scores));
    expect(workers.j.frames).toHaveLength(3);
  });
});

describe('run size', () => {
  it('a coalesced batch runs in chunks of RUN_BATCH; warm-up tunes it among the batch sizes', async () => {
    const sizes: number[] = [];
    const loader = async (dir: string, o: { device: 'cpu' | 'cuda'; threads: number }) => {
      const m = await defaultModelLoader(dir, o);
      const wrapped: PrgModelApi = Object.create(m);
      wrapped.classify = (b, opts) => {
        sizes.push(b.n);
        return m.classify(b, opts);
      };
      return wrapped;
    };
    t = await createTestApp(
      [{ name: 'tiny' }],
      { maxBatch: 5, maxWaitMs: 1000, runBatch: 2 },
      loader,
    );
    const s = t.app.getHttpServer();
    const png = (await testPng(8, 8)).toString('base64');
    const res = await Promise.all(
      Array.from({ length: 5 }, () =>
        request(s)
          .post('/classify')
          .send({ images: [png] }),
      ),
    );
    expect(res.map((r) => r.status)).toEqual(Array(5).fill(200));
    // 5 images coalesced (maxBatch 5 fills before the 1 s wait), run as 2 + 2 + 1.
    expect(sizes.sort()).toEqual([1, 2, 2]);
    await t.close();

    t = await createTestApp([{ name: 'tiny' }], { maxBatch: 8, warmup: 'all' });
    expect([1, 2, 4, 8]).toContain(t.app.get(MlService).runSize('tiny@0.0.1'));
  });
});

describe('broken model files', () => {
  it('a model whose ONNX is corrupt: 503 MODEL_LOAD_FAILED naming it, and not ready', async () => {
    t = await createTestApp([{ name: 'tiny' }], { warmup: 'all' });
    const s = t.app.getHttpServer();
    expect((await request(s).get('/health/ready')).status).toBe(200);
    await createTinyModel(path.join(t.modelsDir, 'bad'), { name: 'bad', version: '1' });
    await writeFile(path.join(t.modelsDir, 'bad', 'velocity.onnx'), 'not onnx');
    await request(s).post('/models/rescan').expect(200);
    const png = (await testPng(8, 8)).toString('base64');
    const r = await request(s)
      .post('/classify')
      .send({ model: 'bad@1', images: [png] });
    expect(r.status).toBe(503);
    expect(r.body.code).toBe('MODEL_LOAD_FAILED');
    expect(r.body.message).toMatch(/bad@1/);
    // The other model is unaffected.
    await request(s)
      .post('/classify')
      .send({ model: 'tiny', images: [png] })
      .expect(200);
    const m = await request(s).get('/models/bad@1').expect(200);
    expect(m.body.loaded).toBe(false);
    expect(m.body.loadError).toMatch(/onnx/i);
  });
});

describe('graceful shutdown', () => {
  it('app.close() lets an in-flight request finish, then refuses new connections', async () => {
    let entered!: () => void;
    const inRun = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // The real model, with classify held until the test has started shutting down.
    const loader = async (dir: string, o: { device: 'cpu' | 'cuda'; threads: number }) => {
      const m = await defaultModelLoader(dir, o);
      const wrapped: PrgModelApi = Object.create(m);
      wrapped.classify = async (b, opts) => {
        entered();
        await gate;
        return m.classify(b, opts);
      };
      return wrapped;
    };
    t = await createTestApp([{ name: 'tiny' }], { shutdownGraceMs: 10_000 }, loader);
    await t.app.listen(0, '127.0.0.1');
    const port = (t.app.getHttpServer().address() as AddressInfo).port;
    const png = (await testPng(8, 8)).toString('base64');
    const inflight = fetch(`http://127.0.0.1:${port}/classify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ images: [png] }),
    });
    await inRun;
    const closing = t.app.close();
    await new Promise((r) => setTimeout(r, 50));
    await expect(fetch(`http://127.0.0.1:${port}/health/live`)).rejects.toThrow();
    release();
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { results: unknown[] }).results).toHaveLength(1);
    await closing;
    t = { ...t, close: async () => {} } as TestApp;
  });
});
