import { describe, expect, it } from 'vitest';
import { GraphBuilder } from './builder';
import { decodeModel, encodeModel } from './proto';
import { tensor } from './types';
import { runGraph } from '../runtime/session';

describe('GraphBuilder', () => {
  it('infers shapes and runs in ONNX Runtime', async () => {
    const b = new GraphBuilder('t');
    const x = b.input('x', ['N', 3]);
    const w = b.param('w', tensor('float32', [4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]));
    const y = b.tanh(b.linear(x, w));
    expect(y.shape).toEqual(['N', 4]);
    b.output(y, 'y');
    const g = b.build();
    const out = await runGraph(g, { x: tensor('float32', [2, 3], [0.1, 0.2, 0.3, 1, 2, 3]) });
    expect(out.y.dims).toEqual([2, 4]);
    expect(out.y.data[3]).toBeCloseTo(Math.tanh(0.6), 5);
  });

  it('round-trips through ONNX bytes', () => {
    const b = new GraphBuilder('rt');
    const x = b.input('x', ['N', 1, 8, 8]);
    const w = b.param('w', tensor('float32', [2, 1, 3, 3]));
    b.output(b.conv(x, w, undefined, { pads: [1, 1, 1, 1], strides: [2, 2] }), 'y');
    const g = decodeModel(encodeModel(b.build()));
    expect(g.outputs[0].shape).toEqual(['N', 2, 4, 4]);
    expect(g.initializers.get('w')?.dims).toEqual([2, 1, 3, 3]);
  });

  it('rejects malformed bytes with a clear error', () => {
    expect(() => decodeModel(new Uint8Array([1, 2, 3, 255, 255]))).toThrow(
      /not a valid ONNX model/,
    );
  });
});
