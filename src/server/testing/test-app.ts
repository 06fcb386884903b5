/**
 * Test helpers: a temp MODELS_DIR with tiny model fixtures and the real app over it.
 */
import { INestApplication } from '@nestjs/common';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { createTinyModel, TinyModelOptions } from '../../prg/testing/tiny-model';
import { createApp } from '../app';
import type { AppOptions } from '../app.module';
import { ServerConfig, testConfig } from '../config/config';
import { MlService } from '../ml/ml.service';
import { ModelLoader } from '../ml/model-loader';

export interface TestApp {
  app: INestApplication;
  modelsDir: string;
  config: ServerConfig;
  close(): Promise<void>;
}

export async function tempModelsDir(models: TinyModelOptions[]): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'prg-models-'));
  for (const m of models)
    await createTinyModel(path.join(dir, `${m.name ?? 'tiny'}-${m.version ?? '0.0.1'}`), m);
  return dir;
}

export async function createTestApp(
  models: TinyModelOptions[],
  overrides: Partial<ServerConfig> = {},
  loader?: ModelLoader,
  options: Omit<AppOptions, 'loader'> = {},
): Promise<TestApp> {
  const modelsDir = await tempModelsDir(models);
  const config = testConfig({ modelsDir, rateLimitRps: 0, maxWaitMs: 2, ...overrides });
  const app = await createApp(config, {
    ...options,
    loader,
    logger: false,
    inferenceWorkerEntry: path.join(__dirname, 'inference-worker-entry.cjs'),
  });
  await app.init();
  // The server answers while models warm up; tests start from the warm state.
  await app.get(MlService).whenWarm();
  return {
    app,
    modelsDir,
    config,
    async close() {
      await app.close();
      await rm(modelsDir, { recursive: true, force: true });
    },
  };
}

/** A PNG of the given size and channel count with a deterministic pattern. */
export async function testPng(
  width: number,
  height: number,
  channels: 1 | 3 | 4 = 1,
  seed = 0,
): Promise<Buffer> {
  const px = Buffer.alloc(width * height * channels);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37 + seed * 101) % 256;
  return sharp(px, { raw: { width, height, channels } }).png().toBuffer();
}
