import { describe, expect, it } from 'vitest';
import { GraphBuilder } from './builder';
import { promoteInitializers, pruneGraph } from './graph-utils';
import { tensor } from './types';
import { runGraph } from '../runtime/session';

function net() {
  const b = new GraphBuilder('net');
  const x = b.input('x', ['N', 2]);
  const w = b.param('w', tensor('float32', [3, 2], [1, 2, 3, 4, 5, 6]));
  const y = b.linear(x, w);
  b.output(y, 'y');
  const side = b.input('side', [1]);
  b.output(b.mul(b.param('buf', tensor('float32', [1], [7])), side), 'z');
  return b.build();
}

describe('promoteInitializers', () => {
  it('turns parameters into graph inputs fed per run', async () => {
    const g = promoteInitializers(net(), ['w']);
    expect(g.initializers.has('w')).toBe(false);
    expect(g.inputs.map((i) => i.name)).toEqual(['x', 'side', 'w']);
    expect(g.inputs[2].shape).toEqual([3, 2]);
    const out = await runGraph(g, {
      x: tensor('float32', [1, 2], [1, 1]),
      side: tensor('float32', [1], [1]),
      w: tensor('float32', [3, 2], [0, 1, 1, 0, 2, 2]),
    });
    expect(Array.from(out.y.data as Float32Array)).toEqual([1, 1, 4]);
  });

  it('names an unknown initializer', () => {
    expect(() => promoteInitializers(net(), ['nope'])).toThrow(/nope is not an initializer/);
  });
});

describe('pruneGraph', () => {
  it('drops nodes, inputs and initializers the kept outputs do not need', async () => {
    const g = pruneGraph(net(), ['y']);
    expect(g.outputs.map((o) => o.name)).toEqual(['y']);
    expect(g.inputs.map((i) => i.name)).toEqual(['x']);
    expect(g.initializers.has('buf')).toBe(false);
    expect(g.nodes.some((n) => n.op === 'Mul')).toBe(false);
    const out = await runGraph(g, { x: tensor('float32', [1, 2], [1, 0]) });
    expect(Array.from(out.y.data as Float32Array)).toEqual([1, 3, 5]);
  });

  it('names an unknown output', () => {
    expect(() => pruneGraph(net(), ['q'])).toThrow(/q is not a value/);
  });
});
