import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../onnx/builder';
import { tensor } from '../onnx/types';
import { GradientStep } from './gradient-step';
import { AdamW, clipGradNorm } from './optim';
import { ParamStore } from './params';
import { cosineWithWarmup } from './schedule';
import { SessionCache } from './session';

/** Deterministic uniform(-a, a) stream (mulberry32). */
function rng(seed: number) {
  let s = seed >>> 0;
  return (a = 1) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * a;
  };
}

/** MLP 2 → 32 → 32 → 1 (tanh) with an MSE loss, batch fixed at N. */
function mlpLoss(n: number, seed: number) {
  const r = rng(seed);
  const init = (dims: number[], fanIn: number) =>
    tensor(
      'float32',
      dims,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => r(1 / Math.sqrt(fanIn))),
    );
  const b = new GraphBuilder('mlp');
  const x = b.input('x', [n, 2]);
  const y = b.input('y', [n, 1]);
  let h = x;
  const sizes = [2, 32, 32, 1];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const w = b.param(`fc${i}.weight`, init([sizes[i + 1], sizes[i]], sizes[i]));
    const bias = b.param(`fc${i}.bias`, init([sizes[i + 1]], sizes[i]));
    h = b.linear(h, w, bias);
    if (i + 2 < sizes.length) h = b.tanh(h);
  }
  const d = b.sub(h, y);
  b.output(b.reduceMean(b.mul(d, d), [0, 1], false), 'loss');
  b.output(h, 'pred');
  return b.build();
}

describe('end-to-end training (GradientStep + AdamW)', () => {
  it('fits a synthetic regression: loss falls more than 10x', async () => {
    const N = 64;
    const g = mlpLoss(N, 1);
    const names = [...g.initializers.keys()].filter((k) => k.startsWith('fc'));
    const params = ParamStore.fromGraph(g, names);
    const cache = new SessionCache();
    const step = await GradientStep.create(g, {
      loss: 'loss',
      params: names,
      outputs: ['pred'],
      session: { threads: 1 },
      cache,
    });
    expect(step.dataInputs.sort()).toEqual(['x', 'y']);
    const r = rng(7);
    const xs = new Float32Array(N * 2);
    const ys = new Float32Array(N);
    for (let i = 0; i < N; i++) {
      xs[2 * i] = r(2);
      xs[2 * i + 1] = r(2);
      ys[i] = Math.sin(xs[2 * i]) + 0.5 * xs[2 * i + 1] * xs[2 * i + 1] - 0.5;
    }
    const batch = { x: tensor('float32', [N, 2], xs), y: tensor('float32', [N, 1], ys) };
    const opt = new AdamW({ weightDecay: 1e-4 });
    const steps = 300;
    const lr = cosineWithWarmup({ baseLr: 2e-2, totalSteps: steps, warmupSteps: 10, minLr: 1e-3 });
    const losses: number[] = [];
    for (let t = 0; t < steps; t++) {
      const { loss, grads, outputs } = await step.run(params, batch);
      if (t === 0) {
        // The loss reported is the MSE of the prediction reported (same forward pass).
        const pred = outputs.pred.data as Float32Array;
        let mse = 0;
        for (let i = 0; i < N; i++) mse += (pred[i] - ys[i]) ** 2 / N;
        expect(loss).toBeCloseTo(mse, 5);
        expect([...grads.keys()]).toEqual(names);
      }
      losses.push(loss);
      clipGradNorm(grads, 5);
      opt.step(params, grads, lr(t));
    }
    await step.release();
    expect(cache.size).toBe(0);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 10);
  });
});
