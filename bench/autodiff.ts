/**
 * Autodiff speed, one JSON object per line (ONNX Runtime, 2 intra-op threads).
 *
 *   npx vite-node bench/autodiff.ts              both parts
 *   npx vite-node bench/autodiff.ts -- conv      conv backward formulations (32→32 3×3, 28×28, N=128)
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
import { Feeds, GraphSession } from '../src/engine/runtime/session';
import { buildVelocityNet } from '../src/prg/nets';

const THREADS = 2;

async function timeGraph(g: Graph, feeds: Feeds, reps: number): Promise<number> {
  const s = await GraphSession.create(g, { threads: THREADS });
  try {
    for (let i = 0; i < 2; i++) await s.run(feeds);
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await s.run(feeds);
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    // Minimum: the machine is shared, and noise only ever adds time.
    return ms[0];
  } finally {
    await s.release();
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
  const s = await GraphSession.create(g, { threads: THREADS });
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

async function benchConv(): Promise<void> {
  const [N, C, H, K] = [128, 32, 28, 3];
  const r = rng(7);
  const feeds: Feeds = {
    x: randn(r, [N, C, H, H]),
    w: randn(r, [C, C, K, K]),
    g: randn(r, [N, C, H, H]),
  };
  const base = () => {
    const b = new GraphBuilder('conv');
    return { b, x: b.input('x', [N, C, H, H]), w: b.input('w', [C, C, K, K]) };
  };
  // Forward alone.
  {
    const { b, x, w } = base();
    b.output(b.conv(x, w, undefined, { pads: [1, 1, 1, 1] }), 'y');
    const ms = await timeGraph(b.build(), { x: feeds.x, w: feeds.w }, 10);
    console.log(JSON.stringify({ bench: 'conv', variant: 'forward', ms }));
  }
  // The rules' formulation, via vjp on a forward conv (dx: ConvTranspose; dW: Conv over batch).
  const fwd = base();
  fwd.b.output(fwd.b.conv(fwd.x, fwd.w, undefined, { pads: [1, 1, 1, 1] }), 'y');
  const f = fwd.b.build();
  const only = (wrt: string) => {
    const res = vjp(f, { of: ['y'], wrt: [wrt] });
    const g = { ...res.graph, outputs: res.graph.outputs.filter((o) => o.name !== 'y') };
    return { g, feeds: { x: feeds.x, w: feeds.w, grad_y: feeds.g } };
  };
  const ref: Record<string, Tensor> = {};
  for (const wrt of ['x', 'w']) {
    const { g, feeds: fd } = only(wrt);
    ref[wrt] = (await runOnce(g, fd))[`grad_${wrt}`];
    const ms = await timeGraph(g, fd, 10);
    const variant = wrt === 'x' ? 'dx ConvTranspose (+forward)' : 'dW conv-over-batch (+forward)';
    console.log(JSON.stringify({ bench: 'conv', variant, ms }));
  }
  // Alternatives, gradient only (no forward), so subtract nothing.
  const alt = async (
    variant: string,
    wrt: string,
    make: (b: GraphBuilder, x: Value, w: Value, g: Value) => Value,
  ) => {
    const b = new GraphBuilder('alt');
    const x = b.input('x', [N, C, H, H]);
    const w = b.input('w', [C, C, K, K]);
    const g = b.input('g', [N, C, H, H]);
    b.output(make(b, x, w, g), 'd');
    const graph = b.build();
    const out = (await runOnce(graph, feeds)).d;
    const ms = await timeGraph(graph, feeds, 10);
    console.log(
      JSON.stringify({ bench: 'conv', variant, ms, relErrVsRule: relErr(out, ref[wrt]) }),
    );
  };
  await alt('dx ConvTranspose', 'x', (b, _x, w, g) =>
    b.convTranspose(g, w, undefined, { pads: [1, 1, 1, 1] }),
  );
  await alt('dx Conv flipped weights', 'x', (b, _x, w, g) => {
    const wf = b.slice(b.transpose(w, [1, 0, 2, 3]), [-1, -1], [-100, -100], [2, 3], [-1, -1]);
    return b.conv(g, wf, undefined, { pads: [K - 2, K - 2, K - 2, K - 2] });
  });
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
  for (const params of ['initializers', 'inputs'] as const) {
    let fwd = net.graph;
    const feeds = { ...base };
    if (params === 'inputs') {
      fwd = promoteInitializers(net.graph, net.paramNames);
      for (const n of net.paramNames) feeds[n] = net.graph.initializers.get(n)!;
    }
    const res = vjp(fwd, { of: ['v'], wrt: net.paramNames });
    const forwardMs = await timeGraph(fwd, feeds, 8);
    const forwardBackwardMs = await timeGraph(res.graph, { ...feeds, [res.seeds.v]: cot }, 8);
    console.log(
      JSON.stringify({
        bench: 'unet-xs',
        params,
        batch: N,
        nParams: net.params,
        forwardMs,
        forwardBackwardMs,
        ratio: forwardBackwardMs / forwardMs,
      }),
    );
  }
}

async function main(): Promise<void> {
  const which = process.argv.slice(2).filter((a) => a !== '--');
  if (!which.length || which.includes('conv')) await benchConv();
  if (!which.length || which.includes('unet')) await benchUNet();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
