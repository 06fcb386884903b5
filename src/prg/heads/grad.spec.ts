import { describe, expect, it } from 'vitest';
import { vjp } from '../../engine/autodiff';
import { GraphBuilder } from '../../engine/onnx/builder';
import { tensor } from '../../engine/onnx/types';
import { runGraph } from '../../engine/runtime/session';
import { buildHead, poolFeatures } from '.';

describe('heads are differentiable by the engine autodiff', () => {
  it('poolFeatures (both paths) → pooled head → loss: finite gradients for x and every parameter', async () => {
    for (const [h, n] of [
      [8, 4],
      [7, 3],
    ]) {
      const head = buildHead({
        kind: 'pooled',
        inputDim: 2 * n * n,
        hidden: 6,
        classes: 3,
        seed: 1,
      });
      const b = new GraphBuilder('pooled_loss');
      const x = b.input('x', [2, 2, h, h]);
      const logits = b.call(head.graph, { features: poolFeatures(b, x, n) }).logits;
      b.output(b.reduceSum(b.mul(logits, logits), [0, 1], false), 'loss');
      const res = vjp(b.build(), { of: ['loss'], wrt: ['x', ...head.paramNames], seed: 'ones' });
      const data = Array.from({ length: 2 * 2 * h * h }, (_, i) => Math.cos(i));
      const out = await runGraph(res.graph, { x: tensor('float32', [2, 2, h, h], data) });
      expect(out[res.grads.x].dims).toEqual([2, 2, h, h]);
      for (const name of ['x', ...head.paramNames]) {
        const g = out[res.grads[name]].data as Float32Array;
        expect(Array.from(g).every(Number.isFinite), name).toBe(true);
        expect(
          g.some((v) => v !== 0),
          name,
        ).toBe(true);
      }
    }
  });
});
