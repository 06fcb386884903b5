import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../engine/onnx/builder';
import { tensor } from '../../engine/onnx/types';
import { runGraph } from '../../engine/runtime/session';
import { adaptivePoolMatrix, buildHead, poolFeatures } from '.';

function values(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 2);
}

/** PyTorch AdaptiveAvgPool2d written out directly, for reference. */
function adaptivePoolRef(x: Float32Array, c: number, h: number, w: number, n: number): number[] {
  const out: number[] = [];
  for (let ch = 0; ch < c; ch++)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        const [h0, h1] = [Math.floor((i * h) / n), Math.ceil(((i + 1) * h) / n)];
        const [w0, w1] = [Math.floor((j * w) / n), Math.ceil(((j + 1) * w) / n)];
        let s = 0;
        for (let a = h0; a < h1; a++) for (let b = w0; b < w1; b++) s += x[ch * h * w + a * w + b];
        out.push(s / ((h1 - h0) * (w1 - w0)));
      }
  return out;
}

describe('heads', () => {
  it('mlp head (paper §3.1): Linear → tanh → Linear, logits [N, classes]', async () => {
    const head = buildHead({ kind: 'mlp', inputDim: 12, hidden: 8, classes: 5, seed: 1 });
    expect(head.params).toBe(12 * 8 + 8 + 8 * 5 + 5);
    expect(head.graph.inputs[0]).toMatchObject({ name: 'features', shape: ['N', 12] });
    const out = await runGraph(head.graph, { features: tensor('float32', [2, 12], values(24)) });
    expect(out.logits.dims).toEqual([2, 5]);
    expect(Array.from(out.logits.data as Float32Array).every(Number.isFinite)).toBe(true);
  });

  it('pooled head (released code): LayerNorm → Linear → tanh → Linear without bias', async () => {
    const head = buildHead({ kind: 'pooled', inputDim: 48, hidden: 16, classes: 3, seed: 1 });
    expect(head.params).toBe(2 * 48 + 48 * 16 + 16 + 16 * 3);
    expect(head.paramNames).not.toContain('fc2.bias');
    const f = values(96);
    const out = await runGraph(head.graph, { features: tensor('float32', [2, 48], f) });
    expect(out.logits.dims).toEqual([2, 3]);
    // LayerNorm makes the head blind to an affine change of each sample's features.
    const g = f.map((v) => 3 * v + 1);
    const out2 = await runGraph(head.graph, { features: tensor('float32', [2, 48], g) });
    const a = out.logits.data as Float32Array;
    const b = out2.logits.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 3);
  });

  it('poolFeatures matches AdaptiveAvgPool2d for divisible (32→16) and ragged (28→16) sizes', async () => {
    for (const [h, n] of [
      [32, 16],
      [28, 16],
      [7, 3],
    ]) {
      const b = new GraphBuilder('pool');
      const x = b.input('x', ['N', 2, h, h]);
      const y = poolFeatures(b, x, n);
      expect(y.shape).toEqual(['N', 2 * n * n]);
      b.output(y, 'features');
      const data = values(2 * 2 * h * h);
      const out = await runGraph(b.build(), { x: tensor('float32', [2, 2, h, h], data) });
      const got = out.features.data as Float32Array;
      const ref = [
        ...adaptivePoolRef(data.subarray(0, 2 * h * h), 2, h, h, n),
        ...adaptivePoolRef(data.subarray(2 * h * h), 2, h, h, n),
      ];
      // float32 sums of ≤ 9 terms of magnitude ≤ 2: error ~1e-6.
      ref.forEach((r, i) => expect(got[i]).toBeCloseTo(r, 5));
    }
    expect(Array.from(adaptivePoolMatrix(3, 2))).toEqual([0.5, 0.5, 0, 0, 0.5, 0.5]);
  });

  it('rejects bad sizes', () => {
    expect(() => buildHead({ kind: 'mlp', inputDim: 0, hidden: 4, classes: 2, seed: 0 })).toThrow(
      /inputDim/,
    );
  });
});
