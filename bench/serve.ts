/**
 * Serving benchmark: a real server process (`node dist/src/server/main.js`) on loopback, driven by
 * autocannon with single-image POST /classify requests (JSON base64 PNG).
 *
 *   npm run bench:serve                      tiny fixture model (1×28×28, untrained) in a temp dir
 *   MODELS_DIR=./models npm run bench:serve  the models there (default model)
 *   BENCH_SECONDS=10 ...                     duration of each run (default 10)
 *   BENCH_SHAPE=1x8x8 ...                    input shape of the tiny fixture (default 1x28x28)
 *   BENCH_MAX_BATCH=8 ...                    MAX_BATCH of the batched server (default 32)
 *
 * Runs: serial (1 connection), 32 concurrent connections with dynamic batching (MAX_BATCH,
 * MAX_WAIT_MS=5), and 32 concurrent with batching off (MAX_BATCH=1) as a control. Prints one JSON
 * object per run, the model's own time per image at batch 1 and 32 without a server (the ceiling
 * batching can reach), and a summary line with the 32-concurrent / serial throughput ratio.
 */
import autocannon from 'autocannon';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { loadPrgModel } from '../src/prg/inference';
import { readManifest } from '../src/prg/model-dir/io';
import { createTinyModel } from '../src/prg/testing/tiny-model';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const MAX_BATCH = Number(process.env.BENCH_MAX_BATCH ?? 32);
const MAIN = path.resolve(__dirname, '../src/server/main.js');

interface Server {
  proc: ChildProcess;
  url: string;
}

async function startServer(
  modelsDir: string,
  port: number,
  env: Record<string, string>,
): Promise<Server> {
  const proc = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      MODELS_DIR: modelsDir,
      RATE_LIMIT_RPS: '0',
      MODELS_RESCAN_MS: '0',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`${url}/health/ready`)).ok) return { proc, url };
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  proc.kill('SIGTERM');
  throw new Error('server not ready after 60 s');
}

async function stopServer(s: Server): Promise<void> {
  const done = new Promise((r) => s.proc.once('exit', r));
  s.proc.kill('SIGTERM');
  await done;
}

function quantile(h: autocannon.Histogram, q: number): number {
  // autocannon reports fixed percentiles: p50 and p99 are among them.
  return (h as unknown as Record<string, number>)[`p${q}`];
}

async function batchStats(url: string): Promise<{ sum: number; count: number }> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const get = (what: string) =>
    Number(
      new RegExp(`prg_inference_batch_size_${what}\\{[^}]*op="classify"\\} ([\\d.e+]+)`).exec(
        metrics,
      )?.[1] ?? 0,
    );
  return { sum: get('sum'), count: get('count') };
}

async function run(url: string, connections: number, body: string, label: string, extra: object) {
  const opts = {
    url: `${url}/classify`,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json' },
    body,
    connections,
    pipelining: 1,
  };
  // Untimed warm-up at the same concurrency (JIT, allocator, ORT thread pool).
  await autocannon({ ...opts, duration: 2 });
  const before = await batchStats(url);
  const r = await autocannon({ ...opts, duration: SECONDS });
  const after = await batchStats(url);
  const row = {
    bench: 'serve',
    run: label,
    connections,
    seconds: SECONDS,
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors,
    rps: Math.round(r.requests.average * 10) / 10,
    latencyMs: { p50: quantile(r.latency, 50), p99: quantile(r.latency, 99), mean: r.latency.mean },
    meanBatch: Math.round(((after.sum - before.sum) / (after.count - before.count)) * 10) / 10,
    ...extra,
  };
  console.log(JSON.stringify(row));
  return row;
}

/** The model the server served by default (its id from GET /models), so both measure one model. */
async function ortScaling(modelsDir: string, servedId: string | null) {
  const dirs = readdirSync(modelsDir)
    .sort()
    .map((d) => path.join(modelsDir, d))
    .filter((d) => existsSync(path.join(d, 'manifest.json')));
  let dir = dirs[0];
  for (const d of dirs) {
    const m = await readManifest(d);
    if (`${m.name}@${m.version}` === servedId) dir = d;
  }
  if (!dir) throw new Error(`no model directory under ${modelsDir}`);
  const m = await loadPrgModel(dir, { threads: Number(process.env.PRG_THREADS ?? 0) });
  const { channels: c, height: h, width: w } = m.manifest.input;
  const perImage = async (n: number) => {
    const batch = { data: new Float32Array(n * c * h * w), n };
    await m.classify(batch);
    const reps = Math.max(3, Math.round(64 / n));
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await m.classify(batch);
    return Math.round(((performance.now() - t0) / reps / n) * 100) / 100;
  };
  const perImageMs: Record<string, number> = {};
  for (const n of [1, 2, 4, 8, 16, 32]) perImageMs[`b${n}`] = await perImage(n);
  await m.release();
  return { model: m.id, perImageMs };
}

async function main(): Promise<void> {
  let modelsDir = process.env.MODELS_DIR ? path.resolve(process.env.MODELS_DIR) : '';
  let temp = '';
  let model = 'from MODELS_DIR';
  if (!modelsDir) {
    temp = await mkdtemp(path.join(tmpdir(), 'prg-bench-'));
    modelsDir = temp;
    const [c, h, w] = (process.env.BENCH_SHAPE ?? '1x28x28').split('x').map(Number);
    await createTinyModel(path.join(temp, 'tiny'), {
      inputShape: [c, h, w],
      classes: 10,
      name: 'tiny',
      version: '1',
    });
    model = `tiny fixture ${c}x${h}x${w} (untrained U-Net, 8 base channels), euler 3 steps`;
  }
  const px = Buffer.alloc(28 * 28);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
  const png = await sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toBuffer();
  const body = JSON.stringify({ images: [png.toString('base64')] });
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version };

  const rows = [];
  let servedId: string | null;
  let ort: Awaited<ReturnType<typeof ortScaling>>;
  try {
    const batched = await startServer(modelsDir, 39_871, {
      MAX_BATCH: String(MAX_BATCH),
      MAX_WAIT_MS: '5',
    });
    try {
      const models = (await (await fetch(`${batched.url}/models`)).json()) as { default?: string };
      servedId = models.default ?? null;
      if (model === 'from MODELS_DIR' && servedId) model = servedId;
      rows.push(await run(batched.url, 1, body, 'serial', { maxBatch: MAX_BATCH, model }));
      rows.push(
        await run(batched.url, 32, body, 'concurrent-batched', { maxBatch: MAX_BATCH, model }),
      );
    } finally {
      await stopServer(batched);
    }
    const unbatched = await startServer(modelsDir, 39_872, { MAX_BATCH: '1', MAX_WAIT_MS: '0' });
    try {
      rows.push(await run(unbatched.url, 32, body, 'concurrent-unbatched', { maxBatch: 1, model }));
    } finally {
      await stopServer(unbatched);
    }
    // The ceiling batching can reach: the model's own time per image at batch 1 vs 32, in this
    // process with no server running.
    ort = await ortScaling(modelsDir, servedId);
    console.log(JSON.stringify({ bench: 'serve', run: 'ort-per-image', ...ort }));
  } finally {
    if (temp) await rm(temp, { recursive: true, force: true });
  }
  const [serial, conc, control] = rows;
  console.log(
    JSON.stringify({
      bench: 'serve',
      summary: true,
      model,
      machine,
      serialRps: serial.rps,
      concurrent32Rps: conc.rps,
      speedup: Math.round((conc.rps / serial.rps) * 100) / 100,
      speedupWithoutBatching: Math.round((control.rps / serial.rps) * 100) / 100,
      target: 4,
      // Best per-image gain of any batch size over batch 1: what batching can win at most.
      ortBatchCeiling:
        Math.round((ort.perImageMs.b1 / Math.min(...Object.values(ort.perImageMs))) * 100) / 100,
      p50Ms: { serial: serial.latencyMs.p50, concurrent32: conc.latencyMs.p50 },
      p99Ms: { serial: serial.latencyMs.p99, concurrent32: conc.latencyMs.p99 },
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
