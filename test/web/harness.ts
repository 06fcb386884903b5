/**
 * Browser-test harness: the dashboard built from web/ with Vite, the real app (createApp) listening
 * on a free loopback port over a temp MODELS_DIR (the shipped prg-mnist plus a tiny model to
 * fine-tune), and Debian's Chromium driven by playwright-core.
 */
import { INestApplication } from '@nestjs/common';
import { existsSync, promises as fs } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Browser, chromium } from 'playwright-core';
import { build } from 'vite';
import type { TinyModelOptions } from '../../src/prg/testing/tiny-model';
import { createApp } from '../../src/server/app';
import { testConfig } from '../../src/server/config/config';
import { tempModelsDir } from '../../src/server/testing/test-app';

const ROOT = path.resolve(__dirname, '../..');

/** Where Chromium is: CHROMIUM_PATH, else Debian's package (what .ci/run installs). */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates = env.CHROMIUM_PATH
    ? [env.CHROMIUM_PATH]
    : ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return candidates.find((p) => existsSync(p)) ?? null;
}

/**
 * Headless, as root in CI (no sandbox), and quiet: without the background-networking flags Chromium
 * keeps calling Google services, which a machine without network refuses.
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

/** Builds web/ into `outDir` (what `npm run build` does into dist/web). */
export async function buildDashboard(outDir: string): Promise<void> {
  await build({
    configFile: path.join(ROOT, 'web/vite.config.ts'),
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true },
  });
}

export interface DashboardServer {
  url: string;
  app: INestApplication;
  root: string;
  close(): Promise<void>;
}

/**
 * The real app over HTTP, serving the built dashboard from `webDir`; datasets, jobs and models in
 * a fresh temp directory. The shipped prg-mnist is copied in (it is the default model).
 */
export async function startServer(
  webDir: string,
  tiny: TinyModelOptions[],
  apiKeys: string[] = [],
): Promise<DashboardServer> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'prg-web-'));
  Object.assign(process.env, {
    WEB_DIR: webDir,
    DATA_DIR: path.join(root, 'datasets'),
    JOBS_DIR: path.join(root, 'jobs'),
    UPLOAD_TMP_DIR: path.join(root, 'uploads'),
  });
  delete process.env.REDIS_URL;
  delete process.env.WORKER;
  const modelsDir = await tempModelsDir(tiny);
  // Copied, not linked: the catalog only scans real directories.
  await fs.cp(path.join(ROOT, 'models/prg-mnist'), path.join(modelsDir, 'prg-mnist'), {
    recursive: true,
  });
  const config = testConfig({
    modelsDir,
    defaultModel: 'prg-mnist',
    // Loaded on first use, without timing every batch size (the tests send one image at a time).
    warmup: 'none',
    maxBatch: 4,
    rateLimitRps: 0,
    maxWaitMs: 2,
    apiKeys,
    threads: 1,
  });
  const app = await createApp(config, {
    logger: false,
    inferenceWorkerEntry: path.join(ROOT, 'src/server/testing/inference-worker-entry.cjs'),
  });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    root,
    async close() {
      await app.close();
      await fs.rm(modelsDir, { recursive: true, force: true });
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}
