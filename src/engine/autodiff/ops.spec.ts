/**
 * One parameterised finite-difference check over a table of op specs (the JAX
 * lax_autodiff_test layout): every VJP rule, with broadcasting and attribute variants.
 *
 * Tolerance. The forward runs in float32 (relative rounding ~6e-8 per value); the central
 * difference with ε = 1e-2 divides that by 2ε, so rounding contributes ~3e-6 relative, while
 * the truncation error is ε²·f'''/6f' ≈ 2e-5 for the smooth ops here (inputs kept away from
 * kinks and poles by at least 0.1 ≫ ε·|v|). A relative tolerance of 1e-2 therefore separates a
 * correct rule (errors ≲ 1e-4) from a wrong one (errors of order 1) by two orders of magnitude;
 * the 2e-5·Σ|g·v| term covers sums that cancel to near zero.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, Value } from '../onnx/builder';
import { Shape, Tensor, attr, tensor } from '../onnx/types';
import { fdCheck, normal, rng } from './fd-check';

type Gen = 'n' | 'pos' | 'away0' | ((i: number) => number);

interface In {
  dims: number[];
  /** Declared shape when it differs from dims (symbolic batch). */
  decl?: Shape;
  gen?: Gen;
  /** Integer / bool inputs: fixed values, no gradient. */
  int?: number[];
  bool?: number[];
}

interface OpSpec {
  name: string;
  inputs: Record<string, In>;
  build: (b: GraphBuilder, x: Record<string, Value>) => Value;
  eps?: number;
}

const r = rng(42);
function gen(dims: number[], g: Gen = 'n'): Tensor {
  const n = dims.reduce((s, d) => s * d, 1);
  const vals = Array.from({ length: n }, (_, i) => {
    const z = normal(r);
    if (g === 'n') return z;
    if (g === 'pos') return 0.5 + Math.abs(z);
    if (g === 'away0') return Math.sign(z || 1) * (0.2 + Math.abs(z));
    return g(i);
  });
  return tensor('float32', dims, vals);
}

const conv = (
  name: string,
  x: number[],
  w: number[],
  o: { strides?: number[]; pads?: number[]; dilations?: number[]; group?: number; bias?: boolean },
): OpSpec => ({
  name,
  inputs: { x: { dims: x }, w: { dims: w }, ...(o.bias ? { bias: { dims: [w[0]] } } : {}) },
  build: (b, v) => b.conv(v.x, v.w, v.bias, o),
});

const un = (name: string, f: (b: GraphBuilder, x: Value) => Value, g: Gen = 'n'): OpSpec => ({
  name,
  inputs: { x: { dims: [2, 3], gen: g } },
  build: (b, v) => f(b, v.x),
});

const specs: OpSpec[] = [
  {
    name: 'Add broadcast',
    inputs: { a: { dims: [2, 3, 4] }, b: { dims: [3, 1] } },
    build: (b, v) => b.add(v.a, v.b),
  },
  {
    name: 'Add rank-0-like',
    inputs: { a: { dims: [1] }, b: { dims: [2, 3] } },
    build: (b, v) => b.add(v.a, v.b),
  },
  {
    name: 'Sub broadcast',
    inputs: { a: { dims: [2, 1, 4] }, b: { dims: [3, 1] } },
    build: (b, v) => b.sub(v.a, v.b),
  },
  {
    name: 'Mul broadcast',
    inputs: { a: { dims: [2, 3] }, b: { dims: [3] } },
    build: (b, v) => b.mul(v.a, v.b),
  },
  {
    name: 'Mul same input twice',
    inputs: { a: { dims: [2, 3] } },
    build: (b, v) => b.mul(v.a, v.a),
  },
  {
    name: 'Div broadcast',
    inputs: { a: { dims: [2, 3] }, b: { dims: [2, 1], gen: 'away0' } },
    build: (b, v) => b.div(v.a, v.b),
  },
  {
    name: 'Add symbolic batch',
    inputs: { a: { dims: [2, 3], decl: ['N', 3] }, b: { dims: [1, 3] } },
    build: (b, v) => b.mul(b.add(v.a, v.b), v.b),
  },
  un('Neg', (b, x) => b.neg(x)),
  {
    name: 'Pow',
    inputs: { a: { dims: [2, 3], gen: 'pos' }, p: { dims: [3] } },
    build: (b, v) => b.pow(v.a, v.p),
  },
  un('Pow const exponent', (b, x) => b.pow(x, 3)),
  un('Sqrt', (b, x) => b.sqrt(x), 'pos'),
  un('Reciprocal', (b, x) => b.reciprocal(x), 'pos'),
  un('Exp', (b, x) => b.exp(x)),
  un('Log', (b, x) => b.log(x), 'pos'),
  un('Abs', (b, x) => b.abs(x), 'away0'),
  un('Tanh', (b, x) => b.tanh(x)),
  un('Sigmoid', (b, x) => b.sigmoid(x)),
  un('Relu', (b, x) => b.relu(x), 'away0'),
  un('LeakyRelu', (b, x) => b.op1('LeakyRelu', [x], { alpha: attr.f(0.2) }), 'away0'),
  un('Softplus', (b, x) => b.op1('Softplus', [x])),
  un('Erf', (b, x) => b.erf(x)),
  un('Sin', (b, x) => b.sin(x)),
  un('Cos', (b, x) => b.cos(x)),
  un('Identity', (b, x) => b.identity(x)),
  un('Cast float->float', (b, x) => b.cast(x, 'float32')),
  un('Constant', (b, x) =>
    b.mul(x, b.op1('Constant', [], { value: attr.tensor(tensor('float32', [3], [1, 2, 3])) })),
  ),
  {
    name: 'Max/Min',
    inputs: { a: { dims: [2, 3] }, d: { dims: [2, 3], gen: 'away0' } },
    build: (b, v) => {
      const c = b.add(v.a, v.d); // differs from a by ≥ 0.2: no ties within ε
      return b.add(b.max(v.a, c), b.mul(b.min(v.a, c), 2));
    },
  },
  {
    name: 'MatMul 2-D',
    inputs: { a: { dims: [3, 4] }, b: { dims: [4, 5] } },
    build: (b, v) => b.matmul(v.a, v.b),
  },
  {
    name: 'MatMul batched broadcast',
    inputs: { a: { dims: [2, 1, 3, 4] }, b: { dims: [3, 4, 5] } },
    build: (b, v) => b.matmul(v.a, v.b),
  },
  {
    name: 'MatMul batched x 2-D weight',
    inputs: { a: { dims: [2, 3, 4] }, b: { dims: [4, 5] } },
    build: (b, v) => b.matmul(v.a, v.b),
  },
  {
    name: 'MatMul 2-D x batched',
    inputs: { a: { dims: [3, 4] }, b: { dims: [2, 4, 5] } },
    build: (b, v) => b.matmul(v.a, v.b),
  },
  {
    name: 'MatMul vector x matrix',
    inputs: { a: { dims: [4] }, b: { dims: [2, 4, 5] } },
    build: (b, v) => b.matmul(v.a, v.b),
  },
  {
    name: 'MatMul matrix x vector',
    inputs: { a: { dims: [2, 3, 4] }, b: { dims: [4] } },
    build: (b, v) => b.matmul(v.a, v.b),
  },
  {
    name: 'MatMul vector x vector',
    inputs: { a: { dims: [4] }, b: { dims: [4] } },
    build: (b, v) => b.matmul(v.a, v.b),
  },
  {
    name: 'MatMul symbolic batch',
    inputs: { a: { dims: [2, 3, 4], decl: ['N', 3, 4] }, b: { dims: [4, 5] } },
    build: (b, v) => b.matmul(v.a, v.b),
  },
  {
    name: 'Gemm bias broadcast',
    inputs: { a: { dims: [3, 4] }, b: { dims: [4, 5] }, c: { dims: [5] } },
    build: (b, v) => b.gemm(v.a, v.b, v.c),
  },
  {
    name: 'Gemm transA',
    inputs: { a: { dims: [4, 3] }, b: { dims: [4, 5] } },
    build: (b, v) => b.gemm(v.a, v.b, undefined, { transA: true }),
  },
  {
    name: 'Gemm transB alpha',
    inputs: { a: { dims: [3, 4] }, b: { dims: [5, 4] }, c: { dims: [1, 5] } },
    build: (b, v) => b.gemm(v.a, v.b, v.c, { transB: true, alpha: 0.7 }),
  },
  {
    name: 'Gemm transA transB alpha beta',
    inputs: { a: { dims: [4, 3] }, b: { dims: [5, 4] }, c: { dims: [3, 1] } },
    build: (b, v) => b.gemm(v.a, v.b, v.c, { transA: true, transB: true, alpha: 1.5, beta: -0.5 }),
  },
  conv('Conv 3x3 pad 1 bias', [2, 3, 5, 5], [4, 3, 3, 3], { pads: [1, 1, 1, 1], bias: true }),
  conv('Conv stride 2 pad 1 (odd size)', [2, 2, 7, 7], [3, 2, 3, 3], {
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  }),
  conv('Conv stride 2 no pad (crop)', [1, 2, 8, 8], [3, 2, 3, 3], { strides: [2, 2] }),
  conv('Conv stride 3 asym pads', [2, 2, 9, 8], [2, 2, 2, 3], {
    strides: [3, 2],
    pads: [0, 1, 2, 0],
  }),
  conv('Conv dilation 2', [1, 2, 8, 8], [3, 2, 3, 3], { dilations: [2, 2], pads: [2, 2, 2, 2] }),
  conv('Conv dilation + stride', [1, 2, 9, 9], [2, 2, 3, 3], {
    dilations: [2, 1],
    strides: [2, 2],
    pads: [1, 0, 1, 1],
  }),
  conv('Conv groups 2 bias', [2, 4, 6, 6], [6, 2, 3, 3], {
    group: 2,
    pads: [1, 1, 1, 1],
    bias: true,
  }),
  conv('Conv depthwise stride 2', [2, 3, 6, 6], [3, 1, 3, 3], {
    group: 3,
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  }),
  conv('Conv 1x1', [2, 3, 4, 4], [5, 3, 1, 1], {}),
  // Cout < Cin: the weight gradient shifts g instead of x.
  conv('Conv Cout<Cin asym pads dilation', [2, 5, 6, 7], [2, 5, 3, 3], {
    pads: [1, 0, 2, 1],
    dilations: [1, 2],
    bias: true,
  }),
  conv('Conv 1x1 Cout<Cin', [2, 5, 3, 3], [2, 5, 1, 1], {}),
  conv('Conv Cout<Cin 3x3 pad 1', [2, 4, 5, 5], [3, 4, 3, 3], { pads: [1, 1, 1, 1] }),
  conv('Conv Cout<Cin stride 2', [1, 4, 7, 7], [2, 4, 3, 3], {
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  }),
  {
    name: 'Conv symbolic batch',
    inputs: { x: { dims: [2, 4, 6, 6], decl: ['N', 4, 6, 6] }, w: { dims: [4, 2, 3, 3] } },
    build: (b, v) => b.conv(v.x, v.w, undefined, { group: 2, strides: [2, 2], pads: [1, 1, 1, 1] }),
  },
  {
    name: 'Conv symbolic batch, stride 2, dilation 2',
    inputs: { x: { dims: [2, 3, 9, 9], decl: ['N', 3, 9, 9] }, w: { dims: [4, 3, 3, 3] } },
    build: (b, v) =>
      b.conv(v.x, v.w, undefined, { strides: [2, 2], dilations: [2, 2], pads: [1, 0, 2, 1] }),
  },
  {
    name: 'ConvTranspose stride 2 output_padding bias',
    inputs: { x: { dims: [2, 3, 4, 4] }, w: { dims: [3, 2, 3, 3] }, bias: { dims: [2] } },
    build: (b, v) =>
      b.convTranspose(v.x, v.w, v.bias, {
        strides: [2, 2],
        pads: [1, 1, 1, 1],
        outputPadding: [1, 1],
      }),
  },
  {
    name: 'ConvTranspose groups dilation',
    inputs: { x: { dims: [1, 4, 5, 5] }, w: { dims: [4, 3, 2, 2] } },
    build: (b, v) =>
      b.convTranspose(v.x, v.w, undefined, { group: 2, dilations: [2, 2], strides: [2, 1] }),
  },
  {
    name: 'AveragePool 2x2 s2',
    inputs: { x: { dims: [2, 3, 6, 6] } },
    build: (b, v) => b.averagePool(v.x, [2, 2], { strides: [2, 2] }),
  },
  {
    name: 'AveragePool 3x3 pad exclude',
    inputs: { x: { dims: [2, 2, 5, 5] } },
    build: (b, v) => b.averagePool(v.x, [3, 3], { pads: [1, 1, 1, 1] }),
  },
  {
    name: 'AveragePool 3x3 s2 pad include, ragged',
    inputs: { x: { dims: [1, 2, 6, 7] } },
    build: (b, v) =>
      b.averagePool(v.x, [3, 2], { strides: [2, 2], pads: [1, 0, 1, 1], countIncludePad: true }),
  },
  {
    name: 'GlobalAveragePool',
    inputs: { x: { dims: [2, 3, 4, 5] } },
    build: (b, v) => b.globalAveragePool(v.x),
  },
  {
    name: 'Resize nearest x2',
    inputs: { x: { dims: [2, 3, 3, 4] } },
    build: (b, v) => b.resizeNearest(v.x, [1, 1, 2, 2]),
  },
  {
    name: 'Resize nearest half_pixel x(3,2)',
    inputs: { x: { dims: [1, 2, 3, 3] } },
    build: (b, v) =>
      b.op1('Resize', [v.x, undefined, b.const(tensor('float32', [4], [1, 1, 3, 2]))], {
        mode: attr.s('nearest'),
      }),
  },
  { name: 'Reshape', inputs: { x: { dims: [2, 3, 4] } }, build: (b, v) => b.reshape(v.x, [4, -1]) },
  {
    name: 'Reshape symbolic batch',
    inputs: { x: { dims: [2, 12], decl: ['N', 12] } },
    build: (b, v) => b.tanh(b.reshape(v.x, [0, 3, 4])),
  },
  { name: 'Flatten', inputs: { x: { dims: [2, 3, 2, 2] } }, build: (b, v) => b.flatten(v.x, 2) },
  {
    name: 'Transpose',
    inputs: { x: { dims: [2, 3, 4] } },
    build: (b, v) => b.transpose(v.x, [2, 0, 1]),
  },
  {
    name: 'Concat axis 1',
    inputs: { a: { dims: [2, 1, 3] }, b: { dims: [2, 3, 3] }, c: { dims: [2, 2, 3] } },
    build: (b, v) => b.concat([v.a, v.b, v.c], 1),
  },
  {
    name: 'Split (one part unused)',
    inputs: { x: { dims: [2, 6] } },
    build: (b, v) => {
      const [p, , q] = b.split(v.x, [1, 2, 3], 1);
      return b.mul(p, b.reduceSum(q, [1]));
    },
  },
  {
    name: 'Slice step 1 negative start',
    inputs: { x: { dims: [4, 6] } },
    build: (b, v) => b.slice(v.x, [1, -4], [3, 100], [0, 1]),
  },
  {
    name: 'Slice step 2',
    inputs: { x: { dims: [3, 7] } },
    build: (b, v) => b.slice(v.x, [1], [7], [1], [2]),
  },
  {
    name: 'Slice steps 3 and -2',
    inputs: { x: { dims: [8, 3, 7] } },
    build: (b, v) => b.slice(v.x, [1, 6], [8, 0], [0, 2], [3, -2]),
  },
  {
    name: 'Slice reverse',
    inputs: { x: { dims: [2, 5] } },
    build: (b, v) => b.slice(v.x, [-1], [-100], [1], [-1]),
  },
  { name: 'Squeeze', inputs: { x: { dims: [2, 1, 3] } }, build: (b, v) => b.squeeze(v.x, [1]) },
  {
    name: 'Unsqueeze',
    inputs: { x: { dims: [2, 3] } },
    build: (b, v) => b.unsqueeze(v.x, [0, -1]),
  },
  { name: 'Expand', inputs: { x: { dims: [3, 1] } }, build: (b, v) => b.expand(v.x, [2, 3, 4]) },
  { name: 'Pad', inputs: { x: { dims: [2, 3] } }, build: (b, v) => b.pad(v.x, [0, 1, 2, 2], 1.5) },
  {
    name: 'ReduceSum axis 1 drop',
    inputs: { x: { dims: [2, 3, 4] } },
    build: (b, v) => b.reduceSum(v.x, [1], false),
  },
  {
    name: 'ReduceSum all',
    inputs: { x: { dims: [2, 3] } },
    build: (b, v) => b.op1('ReduceSum', [v.x]),
  },
  {
    name: 'ReduceMean axes 0,2 keep',
    inputs: { x: { dims: [2, 3, 4] } },
    build: (b, v) => b.reduceMean(v.x, [0, -1]),
  },
  {
    name: 'ReduceMean over symbolic batch',
    inputs: { x: { dims: [3, 4], decl: ['N', 4] } },
    build: (b, v) => b.reduceMean(b.mul(v.x, v.x), [0], false),
  },
  { name: 'Softmax last axis', inputs: { x: { dims: [2, 5] } }, build: (b, v) => b.softmax(v.x) },
  {
    name: 'Softmax axis 1 of 3',
    inputs: { x: { dims: [2, 3, 4] } },
    build: (b, v) => b.softmax(v.x, 1),
  },
  {
    name: 'LogSoftmax axis 0',
    inputs: { x: { dims: [3, 4] } },
    build: (b, v) => b.logSoftmax(v.x, 0),
  },
  {
    name: 'InstanceNormalization scale and bias on the path',
    inputs: { x: { dims: [2, 3, 2, 3] }, s: { dims: [3], gen: 'away0' }, c: { dims: [3] } },
    build: (b, v) => b.instanceNorm(v.x, v.s, v.c, 1e-3),
  },
  {
    // Constant unit scale and zero bias: the rule reads x̂ off the forward output.
    name: 'InstanceNormalization unit scale, rank 3',
    inputs: { x: { dims: [2, 3, 5] } },
    build: (b, v) =>
      b.instanceNorm(
        v.x,
        b.const(tensor('float32', [3], [1, 1, 1])),
        b.const(tensor('float32', [3], [0, 0, 0])),
      ),
  },
  {
    name: 'BatchNormalization (inference) all inputs on the path',
    inputs: {
      x: { dims: [2, 3, 2, 2] },
      s: { dims: [3] },
      c: { dims: [3] },
      m: { dims: [3] },
      v: { dims: [3], gen: 'pos' },
    },
    build: (b, v) => b.batchNormInference(v.x, v.s, v.c, v.m, v.v, 1e-3),
  },
  {
    // Symbolic batch: the plain closed form (no BatchNormalization over N·C instances).
    name: 'InstanceNormalization symbolic batch',
    inputs: { x: { dims: [2, 3, 4], decl: ['N', 3, 4] }, s: { dims: [3] }, c: { dims: [3] } },
    build: (b, v) => b.instanceNorm(v.x, v.s, v.c),
  },
  {
    name: 'GroupNorm (InstanceNormalization + affine)',
    inputs: { x: { dims: [2, 4, 3, 2] }, gamma: { dims: [4] }, beta: { dims: [4] } },
    build: (b, v) => b.groupNorm(v.x, 2, v.gamma, v.beta),
  },
  // Mul(x, Sigmoid(x)) has a fused rule; the Sigmoid keeps only its other consumers' share.
  { name: 'SiLU x·σ(x)', inputs: { x: { dims: [2, 5] } }, build: (b, v) => b.silu(v.x) },
  {
    name: 'SiLU σ(x)·x, σ(x) also used elsewhere',
    inputs: { x: { dims: [2, 5] } },
    build: (b, v) => {
      const s = b.sigmoid(v.x);
      return b.add(b.mul(s, v.x), b.mul(s, s));
    },
  },
  {
    name: 'SiLU under a broadcast cotangent',
    inputs: { x: { dims: [2, 3] } },
    build: (b, v) => b.reduceMean(b.silu(v.x), [1]),
  },
  {
    name: 'Gather axis 0 repeated 2-D indices',
    inputs: { x: { dims: [4, 3] }, i: { dims: [2, 2], int: [1, 3, 1, 0] } },
    build: (b, v) => b.gather(v.x, v.i, 0),
  },
  {
    name: 'Gather axis 1 negative index',
    inputs: { x: { dims: [2, 5, 3] }, i: { dims: [3], int: [-1, 2, 2] } },
    build: (b, v) => b.gather(v.x, v.i, 1),
  },
  {
    name: 'GatherElements',
    inputs: { x: { dims: [2, 4] }, i: { dims: [2, 3], int: [0, 3, 3, 1, 1, -2] } },
    build: (b, v) => b.op1('GatherElements', [v.x, v.i], { axis: attr.i(1) }),
  },
  {
    name: 'Where broadcast',
    inputs: { c: { dims: [3], bool: [1, 0, 1] }, a: { dims: [2, 3] }, d: { dims: [2, 1] } },
    build: (b, v) => b.where(v.c, v.a, v.d),
  },
];

describe('VJP rules match central differences', () => {
  it.each(specs.map((s) => [s.name, s] as const))('%s', async (_name, spec) => {
    const b = new GraphBuilder('op');
    const vals: Record<string, Value> = {};
    const feeds: Record<string, Tensor> = {};
    const wrt: string[] = [];
    for (const [k, i] of Object.entries(spec.inputs)) {
      if (i.int) {
        vals[k] = b.input(k, i.decl ?? i.dims, 'int64');
        feeds[k] = tensor('int64', i.dims, i.int);
      } else if (i.bool) {
        vals[k] = b.input(k, i.decl ?? i.dims, 'bool');
        feeds[k] = tensor('bool', i.dims, i.bool);
      } else {
        vals[k] = b.input(k, i.decl ?? i.dims);
        feeds[k] = gen(i.dims, i.gen);
        wrt.push(k);
      }
    }
    b.output(spec.build(b, vals), 'y');
    const res = await fdCheck(b.build(), { of: ['y'], wrt, feeds, eps: spec.eps });
    if (process.env.FD_DEBUG) console.log(spec.name, JSON.stringify(res));
    for (const c of res) {
      const tol =
        1e-2 * Math.max(Math.abs(c.analytic), Math.abs(c.numeric)) + 2e-5 * c.scale + 1e-6;
      expect(
        Math.abs(c.analytic - c.numeric),
        `${c.wrt}: ${JSON.stringify(c)}`,
      ).toBeLessThanOrEqual(tol);
    }
  });
});
