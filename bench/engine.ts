/**
 * Engine benchmark: PRG-UNet-XS (1×28×28) forward and forward+backward in ONNX Runtime, a MatMul
 * peak measured in the same run, and PyTorch eager side by side. One JSON object per line.
 *
 *   npm run bench:engine                  (build, then node dist/bench/engine.js)
 *   npx vite-node bench/engine.ts         (no build)
 *
 * Environment: PRG_THREADS (default: number of cores; torch gets the same), PRG_DEVICE,
 * PRG_ORT_SPIN, BENCH_BATCH (128), BENCH_REPS (5 timed runs after 2 warm-ups), BENCH_PROFILE=1
 * (ORT profile of the training step, summarised per op type, forward vs backward nodes),
 * BENCH_TORCH=0 (skip the PyTorch side), PRG_PYTHON (interpreter with torch; default python3,
 * then /usr/bin/python3), OMP_WAIT_POLICY for torch (default PASSIVE, matching ORT's
 * non-spinning threads).
 *
 * Cases
 * - matmul-peak: 1024×1024×1024 MatMul; its GFLOP/s is the `peak_gflops` of every row.
 * - unet-xs-infer: forward of the velocity net v(x, t), parameters as initializers.
 * - unet-xs-train: flow-matching loss mean((v(x_t, t) − u)²) and its gradient w.r.t. all
 *   parameters (paper §3.1, Eq. 2 with the ICFM path: x_t = (1−t)x₀ + t·x₁, u = x₁ − x₀);
 *   parameters are graph inputs, as in training. fwd_ms = forward of the same graph (loss only),
 *   fwdbwd_ms = loss + all gradients; bwd_over_fwd = (fwdbwd − fwd) / fwd.
 * Times are medians of runs interleaved with torch's (same load); `*_min` are the fastest runs.
 * FLOPs are counted from the graph: Conv, ConvTranspose, MatMul, Gemm at 2·MACs; gflops is the
 * counted FLOPs of the graph that ran over its median time.
 */
import { ChildProcessByStdio, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Readable, Writable } from 'node:stream';
import { promises as fs } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../src/engine/onnx/builder';
import { promoteInitializers } from '../src/engine/onnx/graph-utils';
import { Graph, numel, staticShape, Tensor } from '../src/engine/onnx/types';
import { buildGradientGraph } from '../src/engine/runtime/gradient-step';
import { ParamStore } from '../src/engine/runtime/params';
import { Feeds, GraphSession, SessionOptions } from '../src/engine/runtime/session';
import { buildVelocityNet } from '../src/prg/nets';

const envInt = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${v}: expected a positive integer`);
  return n;
};

const THREADS = envInt('PRG_THREADS', cpus().length);
const BATCH = envInt('BENCH_BATCH', 128);
const REPS = envInt('BENCH_REPS', 5);
const WARMUP = 2;
const PROFILE = process.env.BENCH_PROFILE === '1';

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** 2·MACs of every Conv / ConvTranspose / MatMul / Gemm, from the graph's static shapes. */
export function countFlops(g: Graph): number {
  const shape = (n: string) => staticShape(g.values.get(n)?.shape ?? [], `flops: value ${n}`);
  let total = 0;
  for (const node of g.nodes) {
    switch (node.op) {
      case 'Conv': {
        const w = shape(node.inputs[1]);
        // out elements × (C_in / group) · kh · kw, and w = [C_out, C_in/group, kh, kw].
        total += 2 * numel(shape(node.outputs[0])) * numel(w.slice(1));
        break;
      }
      case 'ConvTranspose': {
        const w = shape(node.inputs[1]); // [C_in, C_out/group, kh, kw]
        total += 2 * numel(shape(node.inputs[0])) * numel(w.slice(1));
        break;
      }
      case 'MatMul': {
        const a = shape(node.inputs[0]);
        total += 2 * numel(shape(node.outputs[0])) * a[a.length - 1];
        break;
      }
      case 'Gemm': {
        const a = shape(node.inputs[0]);
        const transA = node.attrs.transA?.t === 'i' && node.attrs.transA.v === 1;
        total += 2 * numel(shape(node.outputs[0])) * (transA ? a[0] : a[1]);
        break;
      }
    }
  }
  return total;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function rand(dims: number[], seed: number, scale = 1): Tensor {
  let s = seed >>> 0;
  const data = new Float32Array(numel(dims));
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 4294967296 - 0.5) * 2 * scale;
  }
  return { dtype: 'float32', dims, data };
}

const sessionOpts = (extra: SessionOptions = {}): SessionOptions => ({
  threads: THREADS,
  ...extra,
});

/**
 * Peak: 1024³ MatMul, fastest of `runs` runs (the best the machine gave ORT in this process;
 * a median would fold the neighbours' load into the "peak").
 */
async function matmulPeak(runs: number): Promise<number> {
  const n = 1024;
  const b = new GraphBuilder('matmul');
  b.output(b.matmul(b.input('a', [n, n]), b.input('b', [n, n])), 'c');
  const g = b.build();
  const s = await GraphSession.create(g, sessionOpts());
  const feeds = { a: rand([n, n], 1), b: rand([n, n], 2) };
  for (let i = 0; i < WARMUP; i++) await s.run(feeds);
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    best = Math.min(best, performance.now() - t0);
  }
  await s.release();
  return countFlops(g) / (best * 1e6);
}

/** Flow-matching loss around the velocity net: inputs x_t, t, u; output scalar `loss`. */
function fmLossGraph(net: Graph): Graph {
  const [, c, h, w] = staticShape(net.inputs[0].shape, 'net input');
  const b = new GraphBuilder('fm-loss');
  const x = b.input('x', [BATCH, c, h, w]);
  const t = b.input('t', [BATCH]);
  const u = b.input('u', [BATCH, c, h, w]);
  const { v } = b.call(net, { x, t }, { prefix: 'net' });
  const d = b.sub(v, u);
  b.output(b.reduceMean(b.mul(d, d), [0, 1, 2, 3], false), 'loss');
  return b.build();
}

interface TorchInfo {
  params: number;
  threads: number;
  torch_version: string;
}

/**
 * bench/torch_unet_xs.py in --serve mode: one warm process answering "run case X once" over
 * stdin/stdout, so torch and ORT runs can alternate and see the same load on this shared machine.
 */
class TorchWorker {
  private readonly lines: AsyncIterator<string>;
  private constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    readonly info: TorchInfo,
    lines: AsyncIterator<string>,
  ) {
    this.lines = lines;
  }

  static async start(): Promise<TorchWorker | undefined> {
    if (process.env.BENCH_TORCH === '0') {
      console.error('# torch: skipped (BENCH_TORCH=0); torch columns are null');
      return undefined;
    }
    const py = findPython();
    if (!py) {
      console.error(
        '# torch: no python3 with torch found (set PRG_PYTHON); torch columns are null',
      );
      return undefined;
    }
    // The script sits in bench/ of the source tree; from dist/bench, look two levels up.
    let script = join(__dirname, 'torch_unet_xs.py');
    try {
      await fs.access(script);
    } catch {
      script = join(__dirname, '..', '..', 'bench', 'torch_unet_xs.py');
    }
    const child = spawn(
      py,
      [script, '--serve', '--batch', String(BATCH), '--threads', String(THREADS)],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
        // Fair to both sides: ORT sessions do not spin (session.ts default), so neither do
        // torch's OpenMP threads, unless the caller chose a policy.
        env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' },
      },
    );
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) {
      console.error(`# torch: ${py} ${script} exited before it was ready; torch columns are null`);
      return undefined;
    }
    const info = JSON.parse(first.value) as TorchInfo & { ready: boolean };
    return new TorchWorker(child, info, lines);
  }

  async run(name: 'infer' | 'train_fwd' | 'train_fwdbwd'): Promise<number> {
    this.child.stdin.write(`${name}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error('torch worker exited');
    const msg = JSON.parse(r.value) as { ms?: number; error?: string };
    if (msg.ms === undefined) throw new Error(`torch worker: ${msg.error ?? r.value}`);
    return msg.ms;
  }

  close(): void {
    this.child.stdin.end();
  }
}

function findPython(): string | undefined {
  const cands = [process.env.PRG_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (p): p is string => !!p,
  );
  for (const py of cands) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return undefined;
}

type Timed = () => Promise<number>;

const clock =
  (f: () => Promise<unknown>): Timed =>
  async () => {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  };

interface Stat {
  median: number;
  min: number;
}

/**
 * Warm every function up, then run them round-robin REPS times (so all see the same load) and
 * return each one's median and fastest time in ms (null for an absent function). On this shared
 * machine the fastest run is the best estimate of unloaded speed; the median is what a job sees.
 */
async function interleaved(fns: (Timed | null)[]): Promise<(Stat | null)[]> {
  for (const f of fns) if (f) for (let i = 0; i < WARMUP; i++) await f();
  const ts: number[][] = fns.map(() => []);
  for (let r = 0; r < REPS; r++)
    for (let i = 0; i < fns.length; i++) {
      const f = fns[i];
      if (f) ts[i].push(await f());
    }
  return fns.map((f, i) => (f ? { median: median(ts[i]), min: Math.min(...ts[i]) } : null));
}

interface OpStat {
  op: string;
  part: 'fwd' | 'bwd';
  ms: number;
  calls: number;
}

/** Sum ORT profile kernel times per (op type, forward or backward node). */
async function summariseProfile(file: string, forwardNodes: Set<string>, runs: number) {
  const events = JSON.parse(await fs.readFile(file, 'utf8')) as {
    cat?: string;
    name?: string;
    dur?: number;
    args?: { op_name?: string };
  }[];
  const stats = new Map<string, OpStat>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
    const node = e.name.slice(0, -'_kernel_time'.length);
    const part = forwardNodes.has(node) ? 'fwd' : 'bwd';
    const key = `${e.args.op_name}/${part}`;
    const s = stats.get(key) ?? { op: e.args.op_name, part, ms: 0, calls: 0 };
    s.ms += (e.dur ?? 0) / 1000 / runs;
    s.calls += 1 / runs;
    stats.set(key, s);
  }
  return [...stats.values()].sort((a, b) => b.ms - a.ms);
}

async function main(): Promise<void> {
  const torch = await TorchWorker.start();
  try {
    await cases(torch);
  } finally {
    torch?.close();
  }
}

async function cases(torch: TorchWorker | undefined): Promise<void> {
  const peakBefore = await matmulPeak(10);

  const net = buildVelocityNet({
    kind: 'unet',
    preset: 'XS',
    inputShape: [1, 28, 28],
    batch: BATCH,
    seed: 0,
    // Non-zero weights everywhere: timing must not depend on exact zeros.
    overrides: { zeroInit: false },
  });
  const x0 = rand([BATCH, 1, 28, 28], 3);
  const x1 = rand([BATCH, 1, 28, 28], 4);
  const t = rand([BATCH], 5, 0.5);
  for (let i = 0; i < BATCH; i++) (t.data as Float32Array)[i] += 0.5;
  const xt = new Float32Array(x0.data.length);
  const u = new Float32Array(x0.data.length);
  const per = 28 * 28;
  for (let i = 0; i < xt.length; i++) {
    const ti = (t.data as Float32Array)[Math.floor(i / per)];
    const a = (x0.data as Float32Array)[i];
    const b = (x1.data as Float32Array)[i];
    xt[i] = (1 - ti) * a + ti * b;
    u[i] = b - a;
  }
  const dims = [BATCH, 1, 28, 28];
  const data: Feeds = {
    x: { dtype: 'float32', dims, data: xt },
    t,
    u: { dtype: 'float32', dims, data: u },
  };
  const torchRun = (name: 'infer' | 'train_fwd' | 'train_fwdbwd'): Timed | null =>
    torch ? () => torch.run(name) : null;
  const rows: Record<string, unknown>[] = [];
  let profile: Record<string, unknown>[] = [];

  // Inference: v(x, t) with parameters baked in.
  {
    const s = await GraphSession.create(net.graph, sessionOpts());
    const feeds = { x: data.x, t: data.t };
    const [ortStat, torchStat] = await interleaved([clock(() => s.run(feeds)), torchRun('infer')]);
    const ms = ortStat!.median;
    const torchMs = torchStat?.median ?? null;
    await s.release();
    const flops = countFlops(net.graph);
    rows.push({
      case: 'unet-xs-infer',
      batch: BATCH,
      threads: THREADS,
      params: net.params,
      fwd_ms: r3(ms),
      fwdbwd_ms: null,
      bwd_over_fwd: null,
      flops,
      gflops: r3(flops / (ms * 1e6)),
      img_per_s: r3((BATCH * 1000) / ms),
      fwd_ms_min: r3(ortStat!.min),
      torch_fwd_ms: torchMs === null ? null : r3(torchMs),
      torch_fwd_ms_min: torchStat ? r3(torchStat.min) : null,
      torch_fwdbwd_ms: null,
      torch_img_per_s: torchMs === null ? null : r3((BATCH * 1000) / torchMs),
      speedup_vs_torch: torchMs === null ? null : r3(torchMs / ms),
      speedup_vs_torch_min: torchStat ? r3(torchStat.min / ortStat!.min) : null,
    });
  }

  // Training: loss forward, then loss + gradients w.r.t. every parameter.
  {
    const loss = fmLossGraph(net.graph);
    const params = ParamStore.fromGraph(loss, net.paramNames);
    const forward = promoteInitializers(loss, net.paramNames);
    const grad = buildGradientGraph(loss, { loss: 'loss', params: net.paramNames });
    const feeds: Feeds = { ...data, ...params.tensors() };
    const sf = await GraphSession.create(forward, sessionOpts());
    const sb = await GraphSession.create(grad.graph, sessionOpts());
    const fetch = ['loss', ...net.paramNames.map((n) => grad.grads[n])];
    // Sanity: the gradient graph computes the same loss as the forward graph.
    const lossFwd = Number((await sf.run(feeds, ['loss'])).loss.data[0]);
    const lossBwd = Number((await sb.run(feeds, ['loss'])).loss.data[0]);
    const [fwdStat, bwdStat, torchFwdStat, torchAllStat] = await interleaved([
      clock(() => sf.run(feeds, ['loss'])),
      clock(() => sb.run(feeds, fetch)),
      torchRun('train_fwd'),
      torchRun('train_fwdbwd'),
    ]);
    const fwdMs = fwdStat!.median;
    const bwdMs = bwdStat!.median;
    const torchFwd = torchFwdStat?.median ?? null;
    const torchAll = torchAllStat?.median ?? null;
    await sf.release();
    await sb.release();
    const flopsFwd = countFlops(forward);
    const flops = countFlops(grad.graph);
    rows.push({
      case: 'unet-xs-train',
      batch: BATCH,
      threads: THREADS,
      params: net.params,
      fwd_ms: r3(fwdMs),
      fwdbwd_ms: r3(bwdMs),
      bwd_over_fwd: r3((bwdMs - fwdMs) / fwdMs),
      fwdbwd_over_fwd: r3(bwdMs / fwdMs),
      fwd_ms_min: r3(fwdStat!.min),
      fwdbwd_ms_min: r3(bwdStat!.min),
      bwd_over_fwd_min: r3((bwdStat!.min - fwdStat!.min) / fwdStat!.min),
      flops,
      flops_fwd: flopsFwd,
      gflops: r3(flops / (bwdMs * 1e6)),
      img_per_s: r3((BATCH * 1000) / bwdMs),
      grad_graph_nodes: grad.graph.nodes.length,
      loss: lossFwd,
      loss_same_in_grad_graph: Math.abs(lossFwd - lossBwd) <= 1e-5 * Math.abs(lossFwd),
      torch_fwd_ms: torchFwd === null ? null : r3(torchFwd),
      torch_fwdbwd_ms: torchAll === null ? null : r3(torchAll),
      torch_bwd_over_fwd:
        torchFwd === null || torchAll === null ? null : r3((torchAll - torchFwd) / torchFwd),
      torch_img_per_s: torchAll === null ? null : r3((BATCH * 1000) / torchAll),
      speedup_vs_torch: torchAll === null ? null : r3(torchAll / bwdMs),
      torch_fwd_ms_min: torchFwdStat ? r3(torchFwdStat.min) : null,
      torch_fwdbwd_ms_min: torchAllStat ? r3(torchAllStat.min) : null,
      speedup_vs_torch_min: torchAllStat ? r3(torchAllStat.min / bwdStat!.min) : null,
    });
    if (PROFILE) profile = await profileTrain(grad.graph, forward, feeds, fetch);
  }

  const peak = Math.max(peakBefore, await matmulPeak(10));
  print(matmulPeakRow(peak));
  for (const row of rows) {
    const g = row.gflops as number;
    print({ ...row, peak_gflops: r3(peak), frac_of_peak: r3(g / peak) });
  }
  // What the speed target asks of the engine: training at 2× PyTorch means running the training
  // step's FLOPs at twice PyTorch's rate. Beside it, the rate ORT reaches on the same net's
  // forward pass with constant (pre-packed) weights, the most favourable case for its convs; a
  // needed/infer ratio above 1 means the target asks backward passes to beat that.
  const infer = rows.find((r) => r.case === 'unet-xs-infer');
  const train = rows.find((r) => r.case === 'unet-xs-train');
  if (infer && train && typeof train.torch_fwdbwd_ms === 'number') {
    const needed = (2 * (train.flops as number)) / (train.torch_fwdbwd_ms * 1e6);
    print({
      case: 'train-target-check',
      target_speedup_vs_torch: 2,
      torch_train_gflops: r3((train.flops as number) / (train.torch_fwdbwd_ms * 1e6)),
      gflops_needed: r3(needed),
      infer_gflops: infer.gflops,
      train_gflops: train.gflops,
      needed_over_infer_gflops: r3(needed / (infer.gflops as number)),
      needed_over_peak: r3(needed / peak),
    });
  }
  for (const row of profile) print(row);
  if (torch)
    print({
      case: 'torch-info',
      ...torch.info,
      omp_wait_policy: process.env.OMP_WAIT_POLICY ?? 'PASSIVE',
    });
}

/** ORT profile of a few training steps, kernel time per op type, forward vs backward nodes. */
async function profileTrain(
  grad: Graph,
  forward: Graph,
  feeds: Feeds,
  fetch: string[],
): Promise<Record<string, unknown>[]> {
  const prefix = join(process.cwd(), `ort-profile-train-${process.pid}`);
  const sb = await GraphSession.create(grad, sessionOpts({ profilePrefix: prefix }));
  const runs = 3;
  for (let i = 0; i < runs; i++) await sb.run(feeds, fetch);
  sb.endProfiling();
  await sb.release();
  const dir = process.cwd();
  const file = (await fs.readdir(dir)).filter((f) =>
    f.startsWith(`ort-profile-train-${process.pid}`),
  )[0];
  if (!file) return [];
  const fwdNodes = new Set(forward.nodes.map((n) => n.name));
  const stats = await summariseProfile(join(dir, file), fwdNodes, runs);
  await fs.rm(join(dir, file));
  const total = stats.reduce((a, st) => a + st.ms, 0);
  return stats.slice(0, 15).map((st) => ({
    case: 'unet-xs-train-profile',
    op: st.op,
    part: st.part,
    ms_per_step: r3(st.ms),
    share: r3(st.ms / total),
    calls: Math.round(st.calls),
  }));
}

function matmulPeakRow(gflops: number): Record<string, unknown> {
  const flops = 2 * 1024 ** 3;
  return {
    case: 'matmul-peak',
    batch: 1,
    threads: THREADS,
    fwd_ms: r3(flops / (gflops * 1e6)),
    fwdbwd_ms: null,
    bwd_over_fwd: null,
    flops,
    gflops: r3(gflops),
    peak_gflops: r3(gflops),
    frac_of_peak: 1,
    img_per_s: null,
    torch_fwd_ms: null,
    torch_fwdbwd_ms: null,
    torch_img_per_s: null,
    speedup_vs_torch: null,
  };
}

/** Every row carries the 1-minute load average: the machine is shared, numbers are noisy. */
function print(row: Record<string, unknown>): void {
  console.log(JSON.stringify({ ...row, load_avg_1m: r3(loadavg()[0]) }));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
