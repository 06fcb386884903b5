/**
 * Import benchmark: a SiT-shaped checkpoint (SiT-XL/2 by default: 675 M parameters, 2.70 GB of
 * float32) is generated (hashed weights, src/prg/import/testing/hashed-weights.ts; not
 * committed), imported, and served as PRG features; PyTorch eager runs the upstream SiT forward on
 * the same machine in the same run when a checkout and torch are available. One JSON object per
 * line.
 *
 *   npm run bench:import                 (build, then node dist/bench/import.js)
 *
 * Phases run in child processes so each reports its own peak RSS (getrusage maxrss):
 * - generate: write the .safetensors (not timed as import).
 * - import:   read + map + fold the convention + write the model directory (writeImportedModel:
 *             velocity.onnx + velocity.onnx.data + a fresh head), as `prg import sit` does.
 * - serve:    load the directory as the server does (loadPrgModel: weights by reference, ORT
 *             reads them from velocity.onnx.data; nets above STEPWISE_ABOVE_MB, default 512,
 *             run stepwise on one velocity session, else one unrolled fixed-batch graph per
 *             setting), time `features` (K Euler steps to t = 0.5, flattened) for each
 *             (K, batch), all sessions kept alive as the server's GraphCache keeps them; img/s =
 *             batch / median seconds per call; the first call (graph build + session load) is
 *             reported as first_call_seconds.
 * - torch:    bench/torch_sit.py (upstream models.py from SIT_PATH; random init, the speed does not
 *             depend on the values) with the same K and batches, same thread count.
 *
 * `node dist/bench/import.js torch` runs only the PyTorch side (same environment variables).
 *
 * Environment: BENCH_SIT_CONFIG (SiT-XL/2), BENCH_INPUT (32: latent size), BENCH_DIR (tmp),
 * BENCH_STEPS (1,4), BENCH_BATCHES (1,8), BENCH_CASES (KxB pairs, e.g. 1x1,1x8,4x1, instead of
 * every K with every batch: the SiT-XL/2 K = 4, batch 8 case alone costs 32 forwards), BENCH_REPS (2 timed after 1 warm-up), PRG_THREADS
 * (cores), SIT_PATH (SiT checkout; unset = no PyTorch side), PRG_PYTHON (interpreter with torch),
 * STEPWISE_ABOVE_MB (as the server's), BENCH_TORCH_ATTENTION (sdpa: torch's fused attention,
 * as timm's Attention runs on torch 2.x; math: the unfused stand-in).
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { importNet, planSit, SIT_SIZES, writeImportedModel } from '../src/prg/import';
import { loadPrgModel } from '../src/prg/inference';
import { hashedWeights } from '../src/prg/import/testing/hashed-weights';

const env = (k: string, d: string) => process.env[k] || d;
const CONFIG = env('BENCH_SIT_CONFIG', 'SiT-XL/2');
const INPUT = Number(env('BENCH_INPUT', '32'));
const DIR = env('BENCH_DIR', join(tmpdir(), 'prg-bench-import'));
const STEPS = env('BENCH_STEPS', '1,4').split(',').map(Number);
const BATCHES = env('BENCH_BATCHES', '1,8').split(',').map(Number);
const REPS = Number(env('BENCH_REPS', '2'));
/** (K, batch) cases: BENCH_CASES, else every BENCH_STEPS with every BENCH_BATCHES. */
const CASES: [number, number][] = process.env.BENCH_CASES
  ? process.env.BENCH_CASES.split(',').map((c) => {
      const m = /^(\d+)x(\d+)$/.exec(c.trim());
      if (!m) throw new Error(`BENCH_CASES: ${c} is not KxB (e.g. 4x1)`);
      return [Number(m[1]), Number(m[2])];
    })
  : STEPS.flatMap((k) => BATCHES.map((n): [number, number] => [k, n]));
const THREADS = Number(env('PRG_THREADS', String(cpus().length)));
const CKPT = join(DIR, `${CONFIG.replace('/', '-')}.safetensors`);
const MODEL = join(DIR, 'model');

const maxRssMB = () => Math.round(process.resourceUsage().maxRSS / 1024);

/**
 * Proportional set size (Linux): resident pages, a page shared by k mappings counted 1/k. The
 * server's sessions of one model each map velocity.onnx.data; RSS counts those pages once per
 * mapping, PSS once. null where /proc is not available.
 */
async function pssMB(): Promise<number | null> {
  const text = await fs.readFile('/proc/self/smaps_rollup', 'utf8').catch(() => null);
  const kb = text && /^Pss:\s+(\d+) kB/m.exec(text);
  return kb ? Math.round(Number(kb[1]) / 1024) : null;
}
const emit = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

/** Upstream SiT keys and shapes for a config (SiT models.py), learn_sigma, 1000 classes + null. */
function sitShapes(config: string): [string, number[]][] {
  const m = /^SiT-(S|B|L|XL)\/(2|4|8)$/.exec(config);
  if (!m) throw new Error(`BENCH_SIT_CONFIG=${config}: expected SiT-S|B|L|XL/2|4|8`);
  const { depth, hidden: D } = SIT_SIZES[m[1]];
  const p = Number(m[2]);
  const C = 4;
  const T = (INPUT / p) ** 2;
  const out: [string, number[]][] = [
    ['x_embedder.proj.weight', [D, C, p, p]],
    ['x_embedder.proj.bias', [D]],
    ['pos_embed', [1, T, D]],
    ['t_embedder.mlp.0.weight', [D, 256]],
    ['t_embedder.mlp.0.bias', [D]],
    ['t_embedder.mlp.2.weight', [D, D]],
    ['t_embedder.mlp.2.bias', [D]],
    ['y_embedder.embedding_table.weight', [1001, D]],
  ];
  for (let i = 0; i < depth; i++)
    for (const [k, s] of [
      ['attn.qkv', [3 * D, D]],
      ['attn.proj', [D, D]],
      ['mlp.fc1', [4 * D, D]],
      ['mlp.fc2', [D, 4 * D]],
      ['adaLN_modulation.1', [6 * D, D]],
    ] as const) {
      out.push([`blocks.${i}.${k}.weight`, [...s]]);
      out.push([`blocks.${i}.${k}.bias`, [s[0]]]);
    }
  out.push(['final_layer.linear.weight', [p * p * 2 * C, D]]);
  out.push(['final_layer.linear.bias', [p * p * 2 * C]]);
  out.push(['final_layer.adaLN_modulation.1.weight', [2 * D, D]]);
  out.push(['final_layer.adaLN_modulation.1.bias', [2 * D]]);
  return out;
}

/** Stream a float32 safetensors file tensor by tensor (never the whole payload in memory). */
async function generate(): Promise<void> {
  const t0 = performance.now();
  const shapes = sitShapes(CONFIG);
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, s] of shapes) {
    const n = s.reduce((a, b) => a * b, 1) * 4;
    header[k] = { dtype: 'F32', shape: s, data_offsets: [off, off + n] };
    off += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const h = new Uint8Array(json.length + ((8 - ((8 + json.length) % 8)) % 8)).fill(0x20);
  h.set(json);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(h.length), true);
  await fs.mkdir(DIR, { recursive: true });
  const fh = await fs.open(CKPT, 'w');
  try {
    await fh.write(len);
    await fh.write(h);
    for (const [k, s] of shapes) {
      const v = hashedWeights(k, s);
      await fh.write(new Uint8Array(v.buffer));
    }
  } finally {
    await fh.close();
  }
  emit({
    phase: 'generate',
    config: CONFIG,
    bytes: 8 + h.length + off,
    seconds: (performance.now() - t0) / 1000,
    peak_rss_mb: maxRssMB(),
  });
}

async function importPhase(): Promise<void> {
  const t0 = performance.now();
  const imp = await importNet(CKPT, ['ema', 'model'], (sd, root) =>
    planSit(sd, root, CKPT, { path: 'linear', config: CONFIG }),
  );
  const t1 = performance.now();
  const res = await writeImportedModel(imp, {
    out: MODEL,
    name: 'bench-sit',
    classes: ['a', 'b'],
    head: { kind: 'pooled', hidden: 64, featurePool: 16 },
    solver: { name: 'euler', steps: 1, tStar: 0.5 },
    overwrite: true,
  });
  let bytes = 0;
  for (const t of imp.velocity.initializers.values()) bytes += t.data.byteLength;
  emit({
    phase: 'import',
    config: CONFIG,
    params: imp.plan.net.params,
    weights_mb: Math.round(bytes / 2 ** 20),
    read_map_seconds: (t1 - t0) / 1000,
    seconds: (performance.now() - t0) / 1000,
    files: res.manifest.files,
    peak_rss_mb: maxRssMB(),
  });
}

async function servePhase(): Promise<void> {
  const t0 = performance.now();
  // The weights: the external data file, or the whole .onnx for a net small enough to be inline.
  const size = (f: string) => fs.stat(join(MODEL, f)).then((st) => st.size);
  const bytes = await size('velocity.onnx.data').catch(() => size('velocity.onnx'));
  const above = process.env.STEPWISE_ABOVE_MB;
  const model = await loadPrgModel(MODEL, {
    threads: THREADS,
    ...(above ? { stepwiseAbove: Number(above) * 2 ** 20 } : {}),
  });
  const { channels: C, height: H, width: W } = model.manifest.input;
  try {
    for (const [K, n] of CASES) {
      const x = new Float32Array(n * C * H * W).map((_, i) => Math.sin(i) * 0.5);
      const opts = { steps: K, t: 0.5, pool: null };
      const ts = performance.now();
      await model.features({ data: x, n }, opts); // graph build + session load + warm-up
      const firstCall = (performance.now() - ts) / 1000;
      const times: number[] = [];
      for (let r = 0; r < REPS; r++) {
        const a = performance.now();
        await model.features({ data: x, n }, opts);
        times.push((performance.now() - a) / 1000);
      }
      times.sort((a, b) => a - b);
      const med = times[Math.floor(times.length / 2)];
      emit({
        phase: 'serve',
        engine: 'onnxruntime-node',
        config: CONFIG,
        steps: K,
        batch: n,
        seconds_per_call: med,
        img_per_s: n / med,
        first_call_seconds: firstCall,
        threads: THREADS,
        loadavg: loadavg()[0],
        rss_mb: Math.round(process.memoryUsage.rss() / 2 ** 20),
        pss_mb: await pssMB(),
        stepwise: model.stepwise,
        live_sessions: model.liveSessions,
      });
    }
  } finally {
    await model.release();
  }
  emit({
    phase: 'serve-summary',
    config: CONFIG,
    weights_mb: Math.round(bytes / 2 ** 20),
    seconds: (performance.now() - t0) / 1000,
    peak_rss_mb: maxRssMB(),
    prepack: process.env.PRG_ORT_PREPACK !== '0',
  });
}

function child(phase: string): void {
  const r = spawnSync(process.execPath, [__filename, phase], {
    stdio: 'inherit',
    env: process.env,
  });
  if (r.status !== 0) throw new Error(`bench:import phase ${phase} exited with ${r.status}`);
}

function torchSide(): void {
  const sit = process.env.SIT_PATH;
  if (!sit) {
    emit({ phase: 'torch', skipped: 'SIT_PATH (a SiT checkout) not set' });
    return;
  }
  const py = process.env.PRG_PYTHON || 'python3';
  const r = spawnSync(
    py,
    [
      join(process.cwd(), 'bench', 'torch_sit.py'),
      '--sit',
      sit,
      '--config',
      CONFIG,
      '--input',
      String(INPUT),
      '--cases',
      CASES.map(([k, n]) => `${k}x${n}`).join(','),
      '--reps',
      String(REPS),
      '--threads',
      String(THREADS),
      '--attention',
      env('BENCH_TORCH_ATTENTION', 'sdpa'),
    ],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
      // Idle OpenMP threads sleep instead of spinning, as ORT's do (PRG_ORT_SPIN off): on a
      // shared machine spinning threads fight every other process (bench:engine does the same).
      env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' },
    },
  );
  if (r.status !== 0) emit({ phase: 'torch', error: `exit ${r.status ?? r.signal}` });
}

async function main(): Promise<void> {
  const phase = process.argv[2];
  if (phase === 'generate') return generate();
  if (phase === 'import') return importPhase();
  if (phase === 'serve') return servePhase();
  if (phase === 'torch') return torchSide();
  emit({
    bench: 'import',
    config: CONFIG,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}`,
    threads: THREADS,
  });
  if (
    !(await fs
      .stat(CKPT)
      .then(() => true)
      .catch(() => false))
  )
    child('generate');
  child('import');
  child('serve');
  torchSide();
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:import: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
