/**
 * Autodiff speed, one JSON object per line (ONNX Runtime, 2 intra-op threads).
 *
 *   npx vite-node bench/autodiff.ts              both parts
 *   npx vite-node bench/autodiff.ts -- conv      conv gradient formulations (3×3 @28, N=128)
 *   npx vite-node bench/autodiff.ts -- unet      forward vs forward+backward of PRG-UNet-XS, N=128
 *
 * The conv part times alternative standard-op formulations of the Conv input and weight
 * gradients; rules.ts keeps the fastest correct one. The unet part reports the ratio the
 * engineering target bounds: (forward + backward) / forward ≤ 3.5.
 */
import { vjp } from '../src/engine/autodiff';
import { randn, rng } from '../src/engine/autodiff/fd-check';
import { GraphBuilder, Value } from '../src/engine/onnx/builder';
import { Graph, Tensor, tensor } from '../src/engine/onnx/types';
import { promoteInitializers } from '../src/engine/onnx/graph-utils';
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../src/engine/onnx/proto';
import { Feeds, fromOrt, toOrt } from '../src/engine/runtime/session';
import { buildVelocityNet } from '../src/prg/nets';

const THREADS = 2;

/**
 * A session with 2 intra-op threads that do not spin while idle, so process CPU time counts
 * work done, not waiting: on the shared machine, CPU time is the steadier measure.
 */
class BenchSession {
  private constructor(private readonly s: ort.InferenceSession) {}
  static async create(g: Graph): Promise<BenchSession> {
    const s = await ort.InferenceSession.create(encodeModel(g), {
      intraOpNumThreads: THREADS,
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    return new BenchSession(s);
  }
  async run(feeds: Feeds): Promise<Feeds> {
    const inp: Record<string, ort.Tensor> = {};
    for (const n of this.s.inputNames) inp[n] = toOrt(feeds[n]);
    const out = await this.s.run(inp);
    const res: Feeds = {};
    for (const [k, v] of Object.entries(out)) res[k] = fromOrt(v);
    return res;
  }
  release(): Promise<void> {
    return this.s.release();
  }
}

interface Timing {
  /** Minimum wall time of one run: the machine is shared, and noise only ever adds time. */
  ms: number;
  /** Mean process CPU time (user + system, all ORT threads) per run: less sensitive to load. */
  cpuMs: number;
}

async function timeGraph(g: Graph, feeds: Feeds, reps: number): Promise<Timing> {
  const s = await BenchSession.create(g);
  try {
    for (let i = 0; i < 2; i++) await s.run(feeds);
    const ms: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await s.run(feeds);
      ms.push(performance.now() - t0);
    }
    const cpu = process.cpuUsage(cpu0);
    return { ms: Math.min(...ms), cpuMs: (cpu.user + cpu.system) / 1000 / reps };
  } finally {
    await s.release();
  }
}

/** Time two graphs run alternately (min wall time, mean CPU time per run of each). */
async function timePair(g1: Graph, f1: Feeds, g2: Graph, f2: Feeds, reps: number) {
  const s1 = await BenchSession.create(g1);
  const s2 = await BenchSession.create(g2);
  try {
    const out: Timing[] = [
      { ms: Infinity, cpuMs: 0 },
      { ms: Infinity, cpuMs: 0 },
    ];
    for (let i = 0; i < reps + 2; i++)
      for (const [k, s, f] of [
        [0, s1, f1],
        [1, s2, f2],
      ] as const) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await s.run(f);
        const ms = performance.now() - t0;
        const c = process.cpuUsage(c0);
        if (i < 2) continue; // warm-up
        out[k].ms = Math.min(out[k].ms, ms);
        out[k].cpuMs += (c.user + c.system) / 1000 / reps;
      }
    return out;
  } finally {
    await s1.release();
    await s2.release();
  }
}

/** Max |a − b| / max |b|. */
function relErr(a: Tensor, b: Tensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let d = 0;
  let m = 0;
  for (let i = 0; i < y.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    m = Math.max(m, Math.abs(y[i]));
  }
  return d / m;
}

async function runOnce(g: Graph, feeds: Feeds): Promise<Feeds> {
  const s = await BenchSession.create(g);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

/** im2col weight gradient: k² strided Slices of the padded input, Concat, one MatMul. */
function im2colWeightGrad(b: GraphBuilder, x: Value, g: Value, k: number, pad: number): Value {
  const [n, cin, h, w] = x.shape as number[];
  const cout = g.shape[1] as number;
  const xp = b.pad(x, [0, 0, pad, pad, 0, 0, pad, pad]);
  const taps: Value[] = [];
  for (let i = 0; i < k; i++)
    for (let j = 0; j < k; j++) taps.push(b.slice(xp, [i, j], [i + h, j + w], [2, 3]));
  // cols [N, Cin, k², H·W] → [N, Cin·k², H·W]
  const cols = b.reshape(
    b.concat(
      taps.map((t) => b.unsqueeze(t, [2])),
      2,
    ),
    [n, cin * k * k, -1],
  );
  const gf = b.reshape(g, [n, cout, -1]);
  const per = b.matmul(gf, b.transpose(cols, [0, 2, 1])); // [N, Cout, Cin·k²]
  return b.reshape(b.reduceSum(per, [0], false), [cout, cin, k, k]);
}

/**
 * One 3×3 pad-1 conv, Cin → Cout at H×H, batch 128, weights fed as inputs (as in training).
 * 'rule' rows are the gradient graphs vjp builds (each includes the forward conv, reported
 * alone first); the other rows are the alternatives the rules were chosen against, gradient only.
 */
async function benchConv(cin: number, cout: number, H: number): Promise<void> {
  const [N, K] = [128, 3];
  const r = rng(7);
  const feeds: Feeds = {
    x: randn(r, [N, cin, H, H]),
    w: randn(r, [cout, cin, K, K]),
    g: randn(r, [N, cout, H, H]),
  };
  const tag = { bench: 'conv', cin, cout, H };
  const fb = new GraphBuilder('conv');
  const x0 = fb.input('x', [N, cin, H, H]);
  const w0 = fb.input('w', [cout, cin, K, K]);
  fb.output(fb.conv(x0, w0, undefined, { pads: [1, 1, 1, 1] }), 'y');
  const f = fb.build();
  const fwdFeeds = { x: feeds.x, w: feeds.w };
  console.log(
    JSON.stringify({ ...tag, variant: 'forward', ...(await timeGraph(f, fwdFeeds, 10)) }),
  );
  const ref: Record<string, Tensor> = {};
  for (const wrt of ['x', 'w']) {
    const res = vjp(f, { of: ['y'], wrt: [wrt] });
    const g = { ...res.graph, outputs: res.graph.outputs.filter((o) => o.name !== 'y') };
    const fd = { ...fwdFeeds, grad_y: feeds.g };
    ref[wrt] = (await runOnce(g, fd))[`grad_${wrt}`];
    const t = await timeGraph(g, fd, 10);
    console.log(JSON.stringify({ ...tag, variant: `rule d${wrt} (+forward)`, ...t }));
  }
  const alt = async (
    variant: string,
    wrt: string,
    make: (b: GraphBuilder, x: Value, w: Value, g: Value) => Value,
  ) => {
    const b = new GraphBuilder('alt');
    const x = b.input('x', [N, cin, H, H]);
    const w = b.input('w', [cout, cin, K, K]);
    const g = b.input('g', [N, cout, H, H]);
    b.output(make(b, x, w, g), 'd');
    const graph = b.build();
    const out = (await runOnce(graph, feeds)).d;
    const t = await timeGraph(graph, feeds, 10);
    console.log(JSON.stringify({ ...tag, variant, ...t, relErrVsRule: relErr(out, ref[wrt]) }));
  };
  await alt('dx ConvTranspose', 'x', (b, _x, w, g) =>
    b.convTranspose(g, w, undefined, { pads: [1, 1, 1, 1] }),
  );
  await alt('dW conv-over-batch', 'w', (b, x, _w, g) => {
    const xt = b.transpose(x, [1, 0, 2, 3]);
    const gt = b.transpose(g, [1, 0, 2, 3]);
    return b.transpose(b.conv(xt, gt, undefined, { pads: [1, 1, 1, 1] }), [1, 0, 2, 3]);
  });
  await alt('dW im2col batched MatMul', 'w', (b, x, _w, g) => im2colWeightGrad(b, x, g, K, 1));
}

async function benchUNet(): Promise<void> {
  const N = 128;
  const net = buildVelocityNet({
    kind: 'unet',
    preset: 'XS',
    inputShape: [1, 28, 28],
    batch: N,
    seed: 0,
    overrides: { zeroInit: false },
  });
  const r = rng(3);
  const base: Feeds = {
    x: randn(r, [N, 1, 28, 28]),
    t: tensor(
      'float32',
      [N],
      Array.from({ length: N }, (_, i) => i / N),
    ),
  };
  const cot = randn(r, [N, 1, 28, 28]);
  // 'initializers': parameters baked in (ORT may pre-pack conv weights, NCHWc);
  // 'inputs': parameters fed per step, as training does (promoteInitializers).
  // 'wrt x': gradient w.r.t. the image only (adjoint ODE, Hutchinson divergence), weights fixed.
  for (const params of ['initializers', 'inputs', 'wrt x'] as const) {
    let fwd = net.graph;
    const feeds = { ...base };
    if (params === 'inputs') {
      fwd = promoteInitializers(net.graph, net.paramNames);
      for (const n of net.paramNames) feeds[n] = net.graph.initializers.get(n)!;
    }
    const res = vjp(fwd, { of: ['v'], wrt: params === 'wrt x' ? ['x'] : net.paramNames });
    // Interleaved, so load from other processes hits both graphs alike.
    const [f, fb] = await timePair(fwd, feeds, res.graph, { ...feeds, [res.seeds.v]: cot }, 8);
    console.log(
      JSON.stringify({
        bench: 'unet-xs',
        params,
        batch: N,
        nParams: net.params,
        forwardMs: f.ms,
        forwardBackwardMs: fb.ms,
        ratio: fb.ms / f.ms,
        forwardCpuMs: f.cpuMs,
        forwardBackwardCpuMs: fb.cpuMs,
        cpuRatio: fb.cpuMs / f.cpuMs,
      }),
    );
  }
}

async function main(): Promise<void> {
  const which = process.argv.slice(2).filter((a) => a !== '--');
  if (!which.length || which.includes('conv')) {
    await benchConv(32, 32, 28);
    await benchConv(96, 32, 28);
  }
  if (!which.length || which.includes('unet')) await benchUNet();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
