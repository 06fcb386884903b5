/**
 * The vjp driver: composite nets against central differences, seeds and output naming, pruning,
 * build-time errors, zero gradients, and no recomputation of the forward pass.
 *
 * Tolerance: as in ops.spec.ts (float32 forward, ε = 1e-2 central differences, all functions
 * smooth at the sampled points): relative 1e-2 plus 2e-5·Σ|g·v| for cancelling sums; a correct
 * gradient lands around 1e-5, a wrong one at order 1.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, Value } from '../onnx/builder';
import { decodeModel, encodeModel } from '../onnx/proto';
import { Tensor, attr, tensor } from '../onnx/types';
import { runGraph } from '../runtime/session';
import { FdResult, fdCheck, randn, rng } from './fd-check';
import { vjp } from './vjp';

function expectClose(res: FdResult[]): void {
  for (const c of res) {
    const tol = 1e-2 * Math.max(Math.abs(c.analytic), Math.abs(c.numeric)) + 2e-5 * c.scale + 1e-6;
    expect(Math.abs(c.analytic - c.numeric), `${c.wrt}: ${JSON.stringify(c)}`).toBeLessThanOrEqual(
      tol,
    );
  }
}

const r = rng(9);
const param = (b: GraphBuilder, name: string, dims: number[], scale = 0.5): Value => {
  const t = randn(r, dims);
  (t.data as Float32Array).forEach((v, i, a) => (a[i] = v * scale));
  return b.param(name, t);
};

describe('vjp on composite nets (central differences)', () => {
  it('GroupNorm with affine parameters, w.r.t. input and parameters', async () => {
    const b = new GraphBuilder('gn');
    const x = b.input('x', [2, 4, 3, 3]);
    const y = b.groupNorm(x, 2, param(b, 'gamma', [4]), param(b, 'beta', [4]));
    b.output(b.mul(y, y), 'y');
    const res = await fdCheck(b.build(), {
      of: ['y'],
      wrt: ['x', 'gamma', 'beta'],
      feeds: { x: randn(r, [2, 4, 3, 3]) },
    });
    expectClose(res);
  });

  it('LayerNorm with symbolic batch', async () => {
    const b = new GraphBuilder('ln');
    const x = b.input('x', ['N', 5]);
    b.output(b.tanh(b.layerNorm(x, param(b, 'gamma', [5]), param(b, 'beta', [5]))), 'y');
    const res = await fdCheck(b.build(), {
      of: ['y'],
      wrt: ['x', 'gamma', 'beta'],
      feeds: { x: randn(r, [3, 5]) },
    });
    expectClose(res);
  });

  it('conv net: stride-2 down, nearest up, skip concat, GroupNorm, scalar loss', async () => {
    const b = new GraphBuilder('unet');
    const x = b.input('x', ['N', 2, 8, 8]);
    const h1 = b.silu(
      b.conv(x, param(b, 'c1.w', [4, 2, 3, 3]), param(b, 'c1.b', [4]), { pads: [1, 1, 1, 1] }),
    );
    const d = b.tanh(
      b.conv(h1, param(b, 'down.w', [4, 4, 3, 3]), undefined, {
        strides: [2, 2],
        pads: [1, 1, 1, 1],
      }),
    );
    const n = b.groupNorm(d, 2, param(b, 'gn.g', [4]), param(b, 'gn.b', [4]));
    const u = b.resizeNearest(n, [1, 1, 2, 2]);
    const cat = b.concat([u, h1], 1);
    const out = b.conv(cat, param(b, 'out.w', [2, 8, 3, 3]), param(b, 'out.b', [2]), {
      pads: [1, 1, 1, 1],
    });
    const loss = b.reduceMean(b.mul(out, out), [0, 1, 2, 3], false);
    b.output(loss, 'loss');
    const g = b.build();
    const res = await fdCheck(g, {
      of: ['loss'],
      wrt: ['x', 'c1.w', 'c1.b', 'down.w', 'gn.g', 'gn.b', 'out.w', 'out.b'],
      feeds: { x: randn(r, [2, 2, 8, 8]) },
      seed: 'ones',
    });
    expect(res.map((c) => c.wrt)).toContain('down.w');
    expectClose(res);
  });

  it('MLP with softmax cross-entropy and label smoothing (symbolic batch)', async () => {
    const classes = 3;
    const alpha = 0.1;
    const b = new GraphBuilder('mlp');
    const x = b.input('x', ['N', 6]);
    const labels = b.input('labels', ['N'], 'int64');
    const h = b.tanh(b.linear(x, param(b, 'w1', [8, 6]), param(b, 'b1', [8])));
    const z = b.linear(h, param(b, 'w2', [classes, 8]), param(b, 'b2', [classes]));
    const onehot = b.op1(
      'OneHot',
      [labels, b.ints([classes]), b.const(tensor('float32', [2], [0, 1]))],
      {
        axis: attr.i(-1),
      },
    );
    // q = (1 − α)·onehot + α/C; loss = −mean_n Σ_c q_c log softmax(z)_c.
    const q = b.add(b.mul(onehot, 1 - alpha), alpha / classes);
    const nll = b.neg(b.reduceSum(b.mul(q, b.logSoftmax(z, 1)), [1], false));
    b.output(b.reduceMean(nll, [0], false), 'loss');
    const g = b.build();
    const feeds: Record<string, Tensor> = {
      x: randn(r, [5, 6]),
      labels: tensor('int64', [5], [0, 2, 1, 1, 0]),
    };
    const res = await fdCheck(g, {
      of: ['loss'],
      wrt: ['x', 'w1', 'b1', 'w2', 'b2'],
      feeds,
      seed: 'ones',
    });
    expectClose(res);
  });

  it('several outputs in `of` accumulate into shared inputs', async () => {
    const b = new GraphBuilder('two');
    const x = b.input('x', [3, 4]);
    const s = b.sigmoid(x);
    b.output(b.mul(s, x), 'a');
    b.output(b.reduceSum(b.exp(s), [1]), 'c');
    const res = await fdCheck(b.build(), {
      of: ['a', 'c'],
      wrt: ['x'],
      feeds: { x: randn(r, [3, 4]) },
    });
    expectClose(res);
  });
});

describe('vjp graph structure', () => {
  it('names seeds and gradients; a scalar output with seed "ones" takes no cotangent input', () => {
    const b = new GraphBuilder('names');
    const x = b.input('x', [2, 3]);
    const w = param(b, 'w', [3]);
    const y = b.mul(x, w);
    b.output(y, 'y');
    b.output(b.reduceSum(y, [0, 1], false), 'loss');
    const g = b.build();

    const ones = vjp(g, { of: ['loss'], wrt: ['w', 'x'], seed: 'ones' });
    expect(ones.seeds).toEqual({});
    expect(ones.grads).toEqual({ w: 'grad_w', x: 'grad_x' });
    expect(ones.graph.inputs.map((i) => i.name)).toEqual(['x']);
    expect(ones.graph.outputs.map((o) => o.name)).toEqual(['y', 'loss', 'grad_w', 'grad_x']);

    const seeded = vjp(g, { of: ['y', 'loss'], wrt: ['w'], seed: 'ones' });
    expect(seeded.seeds).toEqual({ y: 'grad_y' });
    const input = vjp(g, { of: ['loss'], wrt: ['w'] });
    expect(input.seeds).toEqual({ loss: 'grad_loss' });
    expect(input.graph.inputs.find((i) => i.name === 'grad_loss')?.shape).toEqual([]);
  });

  it('gives a zero gradient of the right shape for a wrt that does not influence `of`', async () => {
    const b = new GraphBuilder('zero');
    const x = b.input('x', ['N', 3]);
    const z = b.input('z', ['N', 2]);
    const p = param(b, 'p', [4, 5]);
    b.output(b.tanh(x), 'y');
    b.output(b.add(z, 1), 'other');
    b.output(b.reduceSum(p, [0]), 'unused');
    const res = vjp(b.build(), { of: ['y'], wrt: ['x', 'z', 'p'] });
    const out = await runGraph(res.graph, {
      x: randn(r, [2, 3]),
      z: randn(r, [2, 2]),
      grad_y: randn(r, [2, 3]),
    });
    expect(out.grad_z.dims).toEqual([2, 2]);
    expect(Array.from(out.grad_z.data as Float32Array)).toEqual([0, 0, 0, 0]);
    expect(out.grad_p.dims).toEqual([4, 5]);
    expect((out.grad_p.data as Float32Array).every((v) => v === 0)).toBe(true);
  });

  it('fails at build time naming the op and node when a node on the path has no rule', () => {
    const b = new GraphBuilder('norule');
    const x = b.input('x', [2, 3]);
    const m = b.reduceMax(x, [1]);
    b.output(b.mul(m, 2), 'y');
    const g = b.build();
    const node = g.nodes.find((n) => n.op === 'ReduceMax')!;
    expect(() => vjp(g, { of: ['y'], wrt: ['x'] })).toThrow(
      `no gradient rule for op ReduceMax (node ${node.name})`,
    );
  });

  it('ignores nodes off the path (dead branches, integer outputs) even without rules', async () => {
    const b = new GraphBuilder('pruned');
    const x = b.input('x', [2, 3]);
    const w = param(b, 'w', [3]);
    const frozen = b.reduceMax(param(b, 'frozen', [3]), [0]); // no rule, but not on a wrt path
    const idx = b.argmax(x, 1); // integer output: carries no gradient
    const picked = b.op1('GatherElements', [b.tanh(x), b.unsqueeze(idx, [1])], { axis: attr.i(1) });
    b.output(b.add(b.mul(b.mul(x, w), frozen), picked), 'y');
    b.output(b.reduceMax(x, [0]), 'side'); // no rule, but not on a path to `of`
    const res = vjp(b.build(), { of: ['y'], wrt: ['x', 'w'] });
    const out = await runGraph(res.graph, { x: randn(r, [2, 3]), grad_y: randn(r, [2, 3]) });
    expect(out.grad_w.dims).toEqual([3]);
  });

  it('contains each forward node exactly once: the backward pass reuses forward values', () => {
    const b = new GraphBuilder('reuse');
    const x = b.input('x', ['N', 2, 6, 6]);
    const h = b.tanh(
      b.conv(x, param(b, 'w', [3, 2, 3, 3]), param(b, 'bias', [3]), { pads: [1, 1, 1, 1] }),
    );
    const s = b.sigmoid(b.exp(b.globalAveragePool(h)));
    const p = b.softmax(b.flatten(b.mul(h, s)), 1);
    b.output(b.sqrt(b.add(p, 1)), 'y');
    const g = b.build();
    const res = vjp(g, { of: ['y'], wrt: ['x', 'w', 'bias'] });
    for (const n of g.nodes) {
      const same = res.graph.nodes.filter((m) => m.name === n.name);
      expect(same, n.name).toHaveLength(1);
      expect(same[0]).toEqual(n);
    }
    // Rules for these ops use the forward output, so none of them appears a second time.
    for (const op of ['Tanh', 'Exp', 'Sigmoid', 'Softmax', 'Sqrt', 'GlobalAveragePool'])
      expect(
        res.graph.nodes.filter((n) => n.op === op),
        op,
      ).toHaveLength(g.nodes.filter((n) => n.op === op).length);
  });

  it('differentiates a graph read back from ONNX bytes', async () => {
    const b = new GraphBuilder('bytes');
    const x = b.input('x', ['N', 3]);
    b.output(b.softmax(b.linear(x, param(b, 'fc.w', [4, 3]), param(b, 'fc.b', [4]))), 'y');
    const g = decodeModel(encodeModel(b.build()));
    const res = await fdCheck(g, {
      of: ['y'],
      wrt: ['x', 'fc.w', 'fc.b'],
      feeds: { x: randn(r, [2, 3]) },
    });
    expectClose(res);
  });

  it('rejects unknown names and integer values with a clear message', () => {
    const b = new GraphBuilder('bad');
    const x = b.input('x', [2]);
    const i = b.input('i', [2], 'int64');
    b.output(b.mul(x, 2), 'y');
    b.output(b.add(i, 1), 'j');
    const g = b.build();
    expect(() => vjp(g, { of: ['nope'], wrt: ['x'] })).toThrow(/output nope is not a value/);
    expect(() => vjp(g, { of: ['y'], wrt: ['i'] })).toThrow(/wrt i is int64/);
    expect(() => vjp(g, { of: ['x'], wrt: ['x'] })).toThrow(/in both/);
  });
});
