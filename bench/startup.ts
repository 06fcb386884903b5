/**
 * Start-up benchmark: how long a real server process (`node dist/src/server/main.js`) takes until
 * `/health/live` answers and until `/health/ready` turns 200, with the models of MODELS_DIR
 * (default ./models) and with that volume grown to BENCH_DIRS model directories (copies of the
 * shipped ones under new versions, as fine-tunes would add). One JSON object per run, then a
 * summary line.
 *
 *   npm run bench:startup                         ./models, and ./models grown to 20 directories
 *   BENCH_DIRS=50 WARMUP=all npm run bench:startup
 */
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';

const MAIN = path.resolve(__dirname, '../src/server/main.js');
const SOURCE = path.resolve(process.env.MODELS_DIR ?? path.join(__dirname, '../../models'));
const DIRS = Number(process.env.BENCH_DIRS ?? 20);

interface Run {
  case: string;
  modelDirs: number;
  warmup: string;
  liveMs: number;
  readyMs: number;
}

/** A copy of `src` with `n` model directories: the originals, then copies under new versions. */
async function grownVolume(src: string, n: number): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'prg-startup-'));
  const models = (await readdir(src, { withFileTypes: true })).filter((d) => d.isDirectory());
  for (let i = 0; i < n; i++) {
    const m = models[i % models.length].name;
    const copy = i < models.length ? m : `${m}-copy${i}`;
    await cp(path.join(src, m), path.join(dir, copy), { recursive: true });
    if (copy !== m) {
      const file = path.join(dir, copy, 'manifest.json');
      const manifest = JSON.parse(await readFile(file, 'utf8')) as { version: string };
      manifest.version = `${manifest.version}-copy${i}`;
      await writeFile(file, JSON.stringify(manifest, null, 2));
    }
  }
  return dir;
}

async function measure(name: string, modelsDir: string, modelDirs: number, port: number) {
  const warmup = process.env.WARMUP ?? 'default';
  const started = performance.now();
  const proc = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      MODELS_DIR: modelsDir,
      MODELS_RESCAN_MS: '0',
      WARMUP: warmup,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const poll = async (route: string): Promise<number> => {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
      try {
        if ((await fetch(url + route)).ok) return performance.now() - started;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    const liveMs = await poll('/health/live');
    const readyMs = await poll('/health/ready');
    const run: Run = { case: name, modelDirs, warmup, liveMs, readyMs };
    console.log(
      JSON.stringify({ ...run, liveMs: Math.round(liveMs), readyMs: Math.round(readyMs) }),
    );
    return run;
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
}

async function main(): Promise<void> {
  const shipped = (await readdir(SOURCE, { withFileTypes: true })).filter((d) => d.isDirectory());
  const grown = await grownVolume(SOURCE, DIRS);
  try {
    const a = await measure('shipped', SOURCE, shipped.length, 3300 + (process.pid % 500));
    const b = await measure(`grown-${DIRS}`, grown, DIRS, 3800 + (process.pid % 500));
    console.log(
      JSON.stringify({
        summary: 'startup',
        machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
        loadavg1: Number(loadavg()[0].toFixed(2)),
        live_ms: { shipped: Math.round(a.liveMs), grown: Math.round(b.liveMs) },
        ready_ms: { shipped: Math.round(a.readyMs), grown: Math.round(b.readyMs) },
      }),
    );
  } finally {
    await rm(grown, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
