import { describe, expect, it } from 'vitest';
import { runGraph } from '../engine/runtime/session';
import { tensor } from '../engine/onnx/types';
import { specializeBatch } from './features';
import { buildVelocityNet } from './nets';

describe('specializeBatch', () => {
  it('fixes the batch, re-infers shapes and keeps the weights by reference (no copy)', async () => {
    const net = buildVelocityNet({
      kind: 'dit',
      preset: 'XS',
      inputShape: [1, 8, 8],
      seed: 3,
      overrides: { zeroInit: false }, // so v is not identically 0
    });
    const g = specializeBatch(net.graph, 2);
    expect(g.inputs.find((i) => i.name === 'x')?.shape).toEqual([2, 1, 8, 8]);
    expect(g.outputs[0].shape).toEqual([2, 1, 8, 8]);
    for (const [k, t] of net.graph.initializers)
      if (t.data.byteLength >= 1024) expect(g.initializers.get(k), k).toBe(t);
    const feeds = {
      x: tensor(
        'float32',
        [2, 1, 8, 8],
        Array.from({ length: 128 }, (_, i) => Math.sin(i)),
      ),
      t: tensor('float32', [2], [0.2, 0.7]),
    };
    const want = (await runGraph(net.graph, feeds)).v.data as Float32Array;
    expect(Math.max(...want.map(Math.abs))).toBeGreaterThan(0.01);
    expect((await runGraph(g, feeds)).v.data).toEqual(want);
  });
});
