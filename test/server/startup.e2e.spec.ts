/**
 * Start-up order and memory bounds of the ML boundary: the server answers /health/live while
 * models are still warming up and turns ready when the default model is warm; at most
 * MAX_LOADED_MODELS models are held, the least recently used released and reloaded on demand.
 */
import { INestApplication } from '@nestjs/common';
import { rm } from 'node:fs/promises';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/server/app';
import { testConfig } from '../../src/server/config/config';
import { MlService } from '../../src/server/ml/ml.service';
import { defaultModelLoader, ModelLoader } from '../../src/server/ml/model-loader';
import { tempModelsDir, testPng } from '../../src/server/testing/test-app';

let app: INestApplication | undefined;
let dir: string | undefined;

afterEach(async () => {
  await app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  app = dir = undefined;
});

/** The real loader, counting loads per directory and holding each for `delayMs`. */
function countingLoader(delayMs = 0): { loader: ModelLoader; loads: string[] } {
  const loads: string[] = [];
  const loader: ModelLoader = async (d, o) => {
    loads.push(d);
    await new Promise((r) => setTimeout(r, delayMs));
    return defaultModelLoader(d, o);
  };
  return { loader, loads };
}

describe('start-up order', () => {
  it('live at once, ready only when the default model is warm (WARMUP=default)', async () => {
    dir = await tempModelsDir([{ name: 'a' }, { name: 'b' }]);
    const { loader, loads } = countingLoader(1500);
    app = await createApp(
      testConfig({ modelsDir: dir, warmup: 'default', defaultModel: 'a', maxBatch: 2 }),
      { loader, logger: false },
    );
    await app.init();
    const s = app.getHttpServer();
    // The model is still loading (1.5 s): the process answers, readiness says why it is not ready.
    expect((await request(s).get('/health/live')).status).toBe(200);
    const early = await request(s).get('/health/ready');
    expect(early.status).toBe(503);
    expect(early.body.checks.models.detail).toBe('warming up');
    await app.get(MlService).whenWarm();
    const ready = await request(s).get('/health/ready');
    expect(ready.status).toBe(200);
    // Only the default model was warmed; the other loads on first use.
    expect(loads).toHaveLength(1);
    expect(loads[0]).toMatch(/a-0\.0\.1$/);
  });
});

describe('MAX_LOADED_MODELS', () => {
  it('holds at most N models: the least recently used is released and reloaded on demand', async () => {
    dir = await tempModelsDir([{ name: 'a' }, { name: 'b' }]);
    const { loader, loads } = countingLoader();
    app = await createApp(testConfig({ modelsDir: dir, maxLoadedModels: 1 }), {
      loader,
      logger: false,
    });
    await app.init();
    const s = app.getHttpServer();
    const images = [(await testPng(8, 8)).toString('base64')];
    const loaded = async () =>
      Object.fromEntries(
        (await request(s).get('/models')).body.models.map(
          (m: { name: string; loaded: boolean }) => [m.name, m.loaded],
        ),
      );
    await request(s).post('/classify').send({ images, model: 'a' }).expect(200);
    expect(await loaded()).toEqual({ a: true, b: false });
    await request(s).post('/classify').send({ images, model: 'b' }).expect(200);
    expect(await loaded()).toEqual({ a: false, b: true });
    await request(s).post('/classify').send({ images, model: 'a' }).expect(200);
    expect(await loaded()).toEqual({ a: true, b: false });
    expect(loads.map((d) => d.replace(/.*\//, ''))).toEqual(['a-0.0.1', 'b-0.0.1', 'a-0.0.1']);
  });
});
