import { describe, expect, it } from 'vitest';
import { vjp } from '../../engine/autodiff';
import { GraphBuilder } from '../../engine/onnx/builder';
import { Graph, Tensor, tensor } from '../../engine/onnx/types';
import { runGraph } from '../../engine/runtime/session';
import { BuiltNet, buildDiT, buildUNet, DIT_PRESETS, UNET_PRESETS } from '.';
import { tinyAttentionUNet } from './testing/tiny-unet';

/** loss = Σ v² over the batch; differentiated w.r.t. every parameter and x. */
function withLoss(net: BuiltNet<unknown>): Graph {
  const b = GraphBuilder.from(net.graph);
  const v = b.value('v');
  b.output(b.reduceSum(b.mul(v, v), [0, 1, 2, 3], false), 'loss');
  return b.build();
}

function feeds(c: number, h: number): Record<string, Tensor> {
  const n = 2 * c * h * h;
  return {
    x: tensor(
      'float32',
      [2, c, h, h],
      Array.from({ length: n }, (_, i) => Math.sin(i * 0.7)),
    ),
    t: tensor('float32', [2], [0.25, 0.75]),
  };
}

async function checkGradients(net: BuiltNet<unknown>, f: Record<string, Tensor>) {
  const g = withLoss(net);
  const res = vjp(g, { of: ['loss'], wrt: [...net.paramNames, 'x'], seed: 'ones' });
  const out = await runGraph(res.graph, f, { threads: 1 });
  for (const name of [...net.paramNames, 'x']) {
    const grad = out[res.grads[name]];
    expect(grad.dims, name).toEqual(name === 'x' ? f.x.dims : g.initializers.get(name)!.dims);
    expect(Array.from(grad.data as Float32Array).every(Number.isFinite), name).toBe(true);
  }
  // The output conv/linear bias enters v linearly, so the loss is quadratic in it and a central
  // difference is exact up to float32 rounding of a sum over ~10² terms: relative 1e-3 is ample.
  // An interior weight (first conv / patch embedding) goes through norms, attention and SiLU:
  // with eps = 1e-2 the O(eps²) truncation and float32 rounding of a loss of size ~10² stay well
  // under 2 % of the derivative (measured: < 0.5 %).
  const bias = net.paramNames.find((n) => /^(out\.conv|final\.linear)\.bias$/.test(n))!;
  const inner = net.paramNames.find((n) => /^(down\.0\.res\.0\.conv1|patch)\.weight$/.test(n))!;
  for (const [name, eps, rel] of [
    [bias, 0.05, 1e-3],
    [inner, 1e-2, 2e-2],
  ] as const) {
    const p0 = g.initializers.get(name)!;
    const lossAt = async (delta: number) => {
      const data = Float32Array.from(p0.data as Float32Array);
      data[0] += delta;
      const g2 = { ...g, initializers: new Map(g.initializers) };
      g2.initializers.set(name, { ...p0, data });
      return (await runGraph(g2, f, { threads: 1 })).loss.data[0] as number;
    };
    const fd = ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps);
    const an = (out[res.grads[name]].data as Float32Array)[0];
    expect(Math.abs(an - fd), `${name}: analytic ${an}, fd ${fd}`).toBeLessThan(
      rel * Math.max(1, Math.abs(fd)),
    );
  }
}

describe('velocity nets are differentiable by the engine autodiff', () => {
  it('XS-style U-Net (additive emb, ResBlock skips, odd size with crop)', async () => {
    const net = buildUNet({
      ...UNET_PRESETS.XS,
      inputShape: [1, 6, 6],
      baseChannels: 8,
      seed: 4,
      zeroInit: false,
      timeEmbedDim: 8,
      timeHiddenDim: 16,
    });
    await checkGradients(net, feeds(1, 6));
  });

  it('tiny attention U-Net: every parameter gets a finite gradient', async () => {
    const net = buildUNet(tinyAttentionUNet({ inputShape: [1, 8, 8], seed: 5 }));
    await checkGradients(net, feeds(1, 8));
  });

  it('tiny DiT: every parameter gets a finite gradient', async () => {
    const net = buildDiT({
      ...DIT_PRESETS.XS,
      inputShape: [1, 8, 8],
      patchSize: 2,
      hiddenSize: 16,
      depth: 2,
      numHeads: 2,
      freqEmbedDim: 16,
      posEmbed: 'learned',
      zeroInit: false,
      seed: 5,
    });
    await checkGradients(net, feeds(1, 8));
  });
});
