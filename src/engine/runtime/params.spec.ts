import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../onnx/builder';
import { tensor } from '../onnx/types';
import { ParamStore } from './params';

function graph() {
  const b = new GraphBuilder('g');
  const x = b.input('x', [1, 2]);
  const w = b.param('fc.weight', tensor('float32', [3, 2], [1, 2, 3, 4, 5, 6]));
  const bias = b.param('fc.bias', tensor('float32', [3], [0, 0, 0]));
  b.output(b.mul(b.linear(x, w, bias), 2), 'y');
  return b.build();
}

describe('ParamStore', () => {
  it('copies the chosen initializers and writes them back without touching the source', () => {
    const g = graph();
    const all = ParamStore.fromGraph(g);
    expect(all.names()).toContain('fc.weight');
    const s = ParamStore.fromGraph(g, ['fc.weight', 'fc.bias']);
    expect(s.names()).toEqual(['fc.weight', 'fc.bias']);
    expect(s.numel).toBe(9);
    s.get('fc.weight').data[0] = 42;
    expect((g.initializers.get('fc.weight')!.data as Float32Array)[0]).toBe(1); // a copy
    const g2 = s.writeTo(g);
    expect((g2.initializers.get('fc.weight')!.data as Float32Array)[0]).toBe(42);
    expect((g.initializers.get('fc.weight')!.data as Float32Array)[0]).toBe(1);
    s.get('fc.weight').data[0] = 7; // later updates do not leak into the written graph
    expect((g2.initializers.get('fc.weight')!.data as Float32Array)[0]).toBe(42);
    expect(ParamStore.fromGraph(g2, ['fc.weight']).get('fc.weight').dims).toEqual([3, 2]);
  });

  it('names what is wrong', () => {
    const g = graph();
    expect(() => ParamStore.fromGraph(g, ['nope'])).toThrow(/nope is not an initializer of g/);
    const s = new ParamStore();
    expect(() => s.set('a', [2, 2], new Float32Array(3))).toThrow(/a: 3 values for dims \[2,2\]/);
    s.set('fc.weight', [2, 3], new Float32Array(6));
    expect(() => s.writeTo(g)).toThrow(
      /fc.weight is float32\[3,2\] in g, store has float32\[2,3\]/,
    );
    expect(() => s.get('x')).toThrow(/no parameter named x/);
  });
});
