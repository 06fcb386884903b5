/**
 * Soak: a real server process (`node dist/src/server/main.js`, in-process fine-tune worker) under
 * N clients for D seconds, each client cycling through classify, features, ood (REST) and a
 * GraphQL classify query, while a real fine-tune job runs (one is started again whenever the last
 * finished). Prints JSON lines: one `sample` every SAMPLE_S seconds (requests so far, RSS, open
 * file handles from /proc/<pid>/fd, event-loop lag from the server's own prom-client metrics),
 * then one `summary` (throughput, p50/p99 per route, errors, RSS at start/middle/end and its
 * drift, open handles, lag, jobs, load average). Exits 1 when any request failed.
 *
 *   npm run bench:soak                       32 clients, 600 s, the tiny fixture model (1×8×8)
 *   npm run bench:soak -- --short            32 clients, 90 s (under 2 minutes with start-up)
 *   npm run bench:soak -- --clients 8 --seconds 120
 *   MODELS_DIR=./models npm run bench:soak   the default model there instead (fine-tuned on a
 *                                            toy dataset of its input shape)
 */
import { ChildProcess, spawn } from 'node:child_process';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { readManifest } from '../src/prg/model-dir/io';
import { createTinyModel } from '../src/prg/testing/tiny-model';

const MAIN = path.resolve(__dirname, '../src/server/main.js');
const args = process.argv.slice(2);
const arg = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const SHORT = args.includes('--short');
const CLIENTS = arg('clients', 32);
const SECONDS = arg('seconds', SHORT ? 90 : 600);
const SAMPLE_S = SHORT ? 5 : 15;
/** Allowed RSS drift (end vs the first sample after warm-up), as the issue states it. */
const RSS_MARGIN = 0.1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const line = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

interface Shape {
  c: number;
  h: number;
  w: number;
}

async function setupModels(): Promise<{ dir: string; model: string; shape: Shape; temp: boolean }> {
  if (process.env.MODELS_DIR) {
    const dir = path.resolve(process.env.MODELS_DIR);
    const first = readdirSync(dir).find((n) => !n.startsWith('.'))!;
    const m = await readManifest(path.join(dir, first));
    return {
      dir,
      model: `${m.name}@${m.version}`,
      shape: { c: m.input.channels, h: m.input.height, w: m.input.width },
      temp: false,
    };
  }
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'prg-soak-'));
  await createTinyModel(path.join(dir, 'tiny-0.0.1'), {
    name: 'tiny',
    version: '0.0.1',
    classes: ['dark', 'light'],
    inputShape: [1, 8, 8],
    featurePool: 4,
    solver: { name: 'euler', steps: 4, tStar: 0.5 },
    // msp needs no fitted statistics: /ood has a score to answer with.
    ood: {
      primary: 'msp',
      scores: { msp: { threshold: 0.6, tpr: 0.95, higherIsInDistribution: true } },
    },
  });
  return { dir, model: 'tiny@0.0.1', shape: { c: 1, h: 8, w: 8 }, temp: true };
}

async function image(s: Shape, v: number): Promise<Buffer> {
  const img = sharp(Buffer.alloc(s.c * s.h * s.w, v), {
    raw: { width: s.w, height: s.h, channels: s.c as 1 | 3 },
  });
  // sharp writes RGB unless told the image is grey.
  return (s.c === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
}

/** A zip of two classes of flat images (dark, light), 10 each, of the model's input shape. */
async function toyZip(s: Shape): Promise<Buffer> {
  const { zip } = await import('../src/server/datasets/testing/fixtures');
  const entries = [];
  for (let i = 0; i < 10; i++) {
    entries.push({ name: `toy/dark/${i}.png`, data: await image(s, 20 + 5 * i) });
    entries.push({ name: `toy/light/${i}.png`, data: await image(s, 180 + 5 * i) });
  }
  return zip(entries);
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}
const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** prom-client's event-loop lag gauges (seconds) from /metrics, in ms. */
async function eventLoopLag(
  url: string,
): Promise<{ meanMs: number; p99Ms: number; maxMs: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name: string) => {
    const m = new RegExp(`^${name} ([0-9.e+-]+)`, 'm').exec(text);
    return m ? Number(m[1]) * 1000 : NaN;
  };
  return {
    meanMs: get('prg_nodejs_eventloop_lag_mean_seconds'),
    p99Ms: get('prg_nodejs_eventloop_lag_p99_seconds'),
    maxMs: get('prg_nodejs_eventloop_lag_max_seconds'),
  };
}

function percentile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))];
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const models = await setupModels();
  const data = await fs.mkdtemp(path.join(tmpdir(), 'prg-soak-data-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const url = `http://127.0.0.1:${port}`;
  const proc: ChildProcess = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '127.0.0.1',
      MODELS_DIR: models.dir,
      DATA_DIR: path.join(data, 'datasets'),
      JOBS_DIR: path.join(data, 'jobs'),
      UPLOAD_TMP_DIR: path.join(data, 'uploads'),
      DEFAULT_MODEL: models.model,
      RATE_LIMIT_RPS: '0',
      MODELS_RESCAN_MS: '0',
      REDIS_URL: '',
      WORKER: '1',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const cleanup = async () => {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    await fs.rm(data, { recursive: true, force: true });
    if (models.temp) await fs.rm(models.dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; ; i++) {
      if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
      if (i > 600) throw new Error('server not ready after 120 s');
      const ok = await fetch(`${url}/health/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await sleep(200);
    }
    const form = new FormData();
    form.append('file', new Blob([await toyZip(models.shape)]), 'toy.zip');
    const up = await fetch(`${url}/datasets`, { method: 'POST', body: form });
    if (up.status !== 201) throw new Error(`dataset upload: ${up.status} ${await up.text()}`);
    const dataset = ((await up.json()) as { id: string }).id;
    const jobs: { id: string; status: string; steps?: number }[] = [];
    const startJob = async () => {
      const r = await fetch(`${url}/fine-tunes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: models.model,
          dataset,
          hyperparameters: { epochs: 20, batchSize: 2, warmupEpochs: 0 },
        }),
      });
      if (r.status !== 201) throw new Error(`fine-tune: ${r.status} ${await r.text()}`);
      jobs.push({ id: ((await r.json()) as { id: string }).id, status: 'queued' });
    };
    await startJob();

    const b64 = (await image(models.shape, 90)).toString('base64');
    const enc = encodeURIComponent(models.model);
    const post = (p: string, body: object) =>
      fetch(`${url}${p}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const routes: Record<string, () => Promise<Response>> = {
      classify: () => post('/classify', { images: [b64] }),
      features: () => post(`/models/${enc}/features`, { images: [b64], t: 0.5, pool: 2 }),
      ood: () => post(`/models/${enc}/ood`, { images: [b64] }),
      graphql: () =>
        post('/graphql', {
          query:
            'query($images: [String!]!) { classify(images: $images) { model results { label } } }',
          variables: { images: [b64] },
        }),
    };
    const names = Object.keys(routes);
    const latencies: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    const errors: string[] = [];
    let errorCount = 0;
    const fail = (why: string) => {
      errorCount++;
      if (errors.length < 5) errors.push(why);
    };
    let requests = 0;
    let stop = false;
    const t0 = Date.now();
    const load0 = loadavg();

    const client = async (k: number) => {
      for (let i = k; !stop; i++) {
        const name = names[i % names.length];
        const start = performance.now();
        try {
          const r = await routes[name]();
          const text = await r.text();
          const ok =
            r.status === 200 &&
            (name !== 'graphql' || !(JSON.parse(text) as { errors?: unknown }).errors);
          if (ok) latencies[name].push(performance.now() - start);
          else fail(`${name}: ${r.status} ${text.slice(0, 200)}`);
        } catch (e) {
          fail(`${name}: ${String((e as { cause?: unknown }).cause ?? e)}`);
        }
        requests++;
      }
    };

    const samples: { t: number; rssMB: number; fds: number; lagP99Ms: number; requests: number }[] =
      [];
    const sampler = (async () => {
      while (!stop) {
        const lag = await eventLoopLag(url);
        const s = {
          type: 'sample',
          t: Math.round((Date.now() - t0) / 1000),
          requests,
          rssMB: round(rssBytes(proc.pid!) / 2 ** 20),
          fds: openFds(proc.pid!),
          lagP99Ms: round(lag.p99Ms),
          lagMaxMs: round(lag.maxMs),
          job: jobs.at(-1)?.status,
        };
        samples.push(s);
        line(s);
        // Keep a fine-tune running for the whole soak.
        const last = jobs.at(-1)!;
        const view = (await (await fetch(`${url}/fine-tunes/${last.id}`)).json()) as {
          status: string;
          result?: { steps?: number } | null;
        };
        last.status = view.status;
        if (view.result?.steps) last.steps = view.result.steps;
        if (['succeeded', 'failed', 'cancelled'].includes(view.status)) await startJob();
        await sleep(SAMPLE_S * 1000);
      }
    })();

    const clients = Array.from({ length: CLIENTS }, (_, k) => client(k));
    await sleep(SECONDS * 1000);
    stop = true;
    await Promise.all([...clients, sampler]);
    const elapsed = (Date.now() - t0) / 1000;
    const lagEnd = await eventLoopLag(url);
    const running = jobs.at(-1)!;
    await post(`/fine-tunes/${running.id}/cancel`, {});

    const perRoute = Object.fromEntries(
      names.map((n) => {
        const s = latencies[n].sort((a, b) => a - b);
        return [
          n,
          { count: s.length, p50Ms: round(percentile(s, 50)), p99Ms: round(percentile(s, 99)) },
        ];
      }),
    );
    // The first sample is taken before any load: "start" is the first one under load.
    const start = samples[Math.min(1, samples.length - 1)];
    const middle = samples[Math.floor(samples.length / 2)];
    const end = samples.at(-1)!;
    const summary = {
      type: 'summary',
      mode: SHORT ? 'short' : 'long',
      clients: CLIENTS,
      seconds: round(elapsed),
      model: models.model,
      requests,
      throughputRps: round(requests / elapsed),
      errors: errorCount,
      errorSamples: errors,
      routes: perRoute,
      rssMB: { idle: samples[0].rssMB, start: start.rssMB, middle: middle.rssMB, end: end.rssMB },
      rssDriftFromStart: round((end.rssMB - start.rssMB) / start.rssMB, 3),
      rssWithinMargin: Math.abs(end.rssMB - start.rssMB) / start.rssMB <= RSS_MARGIN,
      openFds: { start: start.fds, end: end.fds, max: Math.max(...samples.map((s) => s.fds)) },
      eventLoopLagMs: {
        p99Max: Math.max(...samples.map((s) => s.lagP99Ms)),
        p99End: round(lagEnd.p99Ms),
        meanEnd: round(lagEnd.meanMs),
      },
      jobs: jobs.map((j) => ({
        id: j.id,
        status: j.status,
        ...(j.steps ? { steps: j.steps } : {}),
      })),
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        loadavgStart: load0.map((x) => round(x, 2)),
        loadavgEnd: loadavg().map((x) => round(x, 2)),
      },
    };
    line(summary);
    await cleanup();
    process.exit(errorCount === 0 ? 0 : 1);
  } catch (e) {
    await cleanup();
    throw e;
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
