/**
 * Static shape and dtype inference, one rule per ONNX op (opset 17 semantics).
 *
 * A rule sees its inputs' dtype/shape and, for inputs that are constants, their values (Reshape,
 * Slice, Expand... need them). Symbolic dimensions flow through where the op keeps them.
 */
import {
  Attrs,
  DType,
  Dim,
  Shape,
  Tensor,
  getInt,
  getInts,
  getString,
  tensorNumbers,
} from './types';

export interface InferInput {
  dtype: DType;
  shape: Shape;
  /** The value, when the input is a constant or initializer known at build time. */
  value?: Tensor;
}

export interface InferOutput {
  dtype: DType;
  shape: Shape;
}

export type ShapeRule = (inputs: (InferInput | undefined)[], attrs: Attrs) => InferOutput[];

function need(inp: InferInput | undefined, what: string): InferInput {
  if (!inp) throw new Error(`missing input: ${what}`);
  return inp;
}

function constInts(inp: InferInput | undefined, what: string): number[] {
  if (!inp?.value) throw new Error(`${what} must be a constant known at build time`);
  return tensorNumbers(inp.value);
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** numpy broadcasting of two shapes; symbolic dims are equal only when their names are. */
export function broadcastShapes(a: Shape, b: Shape): Shape {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === db) out.push(da);
    else if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else if (typeof da === 'string' && typeof db === 'number') out.push(db);
    else if (typeof db === 'string' && typeof da === 'number') out.push(da);
    else throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
  }
  return out;
}

const same: ShapeRule = (ins) => {
  const x = need(ins[0], 'X');
  return [{ dtype: x.dtype, shape: [...x.shape] }];
};

const broadcast: ShapeRule = (ins) => {
  let shape: Shape = [];
  for (const x of ins) if (x) shape = broadcastShapes(shape, x.shape);
  return [{ dtype: need(ins[0], 'A').dtype, shape }];
};

const compare: ShapeRule = (ins, attrs) => [{ ...broadcast(ins, attrs)[0], dtype: 'bool' }];

function prod(shape: Shape): Dim {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return '?';
    n *= d;
  }
  return n;
}

function matmulShape(a: Shape, b: Shape): Shape {
  if (a.length === 1 || b.length === 1) {
    if (a.length === 1 && b.length === 1) return [];
    if (a.length === 1) return [...b.slice(0, -2), b[b.length - 1]];
    return a.slice(0, -1);
  }
  const ka = a[a.length - 1];
  const kb = b[b.length - 2];
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb)
    throw new Error(`MatMul: inner dims ${ka} and ${kb} differ ([${a}] x [${b}])`);
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  return [...batch, a[a.length - 2], b[b.length - 1]];
}

function convOut(size: Dim, k: number, s: number, p0: number, p1: number, d: number): Dim {
  if (typeof size !== 'number') return size;
  return Math.floor((size + p0 + p1 - d * (k - 1) - 1) / s) + 1;
}

export interface ConvParams {
  kernel: number[];
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
}

export function convParams(attrs: Attrs, wShape: Shape): ConvParams {
  const kernel = (getInts(attrs, 'kernel_shape') ?? wShape.slice(2)) as number[];
  const nd = kernel.length;
  const autoPad = getString(attrs, 'auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET')
    throw new Error(`Conv: auto_pad=${autoPad} is not supported; give pads`);
  return {
    kernel,
    strides: getInts(attrs, 'strides') ?? Array(nd).fill(1),
    pads: getInts(attrs, 'pads') ?? Array(2 * nd).fill(0),
    dilations: getInts(attrs, 'dilations') ?? Array(nd).fill(1),
    group: getInt(attrs, 'group', 1),
  };
}

function poolShape(x: Shape, attrs: Attrs): Shape {
  const kernel = getInts(attrs, 'kernel_shape');
  if (!kernel) throw new Error('pool: kernel_shape is required');
  const nd = kernel.length;
  const strides = getInts(attrs, 'strides') ?? Array(nd).fill(1);
  const pads = getInts(attrs, 'pads') ?? Array(2 * nd).fill(0);
  if (getInt(attrs, 'ceil_mode', 0)) throw new Error('pool: ceil_mode=1 is not supported');
  const spatial = kernel.map((k, i) => convOut(x[2 + i], k, strides[i], pads[i], pads[i + nd], 1));
  return [x[0], x[1], ...spatial];
}

function reduceShape(x: Shape, axes: number[] | undefined, keep: boolean): Shape {
  const r = x.length;
  const ax = axes && axes.length ? axes.map((a) => normAxis(a, r)) : x.map((_, i) => i);
  const out: Dim[] = [];
  x.forEach((d, i) => {
    if (ax.includes(i)) {
      if (keep) out.push(1);
    } else out.push(d);
  });
  return out;
}

function reshapeShape(x: Shape, target: number[], allowZero: boolean): Shape {
  const out: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? x[i] : d));
  const minus = out.indexOf(-1);
  if (minus >= 0) {
    const total = prod(x);
    const rest = prod(out.filter((_, i) => i !== minus));
    if (typeof total === 'number' && typeof rest === 'number') {
      if (total % rest !== 0) throw new Error(`Reshape: cannot reshape [${x}] to [${target}]`);
      out[minus] = total / rest;
    } else {
      // Symbolic: the -1 absorbs the symbolic dims when all other dims match statically.
      const xs = x.filter((d) => typeof d === 'string');
      const os = out.filter((d, i) => i !== minus && typeof d === 'string');
      const xn = prod(x.filter((d) => typeof d === 'number')) as number;
      const on = prod(out.filter((d, i) => i !== minus && typeof d === 'number')) as number;
      if (os.length === 0 && xs.length === 1 && xn === on) out[minus] = xs[0];
      else if (os.length === xs.length && os.every((d, i) => d === xs[i]) && xn % on === 0)
        out[minus] = xn / on;
      else out[minus] = `reshape_${target.join('_')}`;
    }
  } else {
    const total = prod(x);
    const got = prod(out);
    if (typeof total === 'number' && typeof got === 'number' && total !== got)
      throw new Error(`Reshape: cannot reshape [${x}] (${total}) to [${target}] (${got})`);
  }
  return out;
}

function sliceShape(x: Shape, starts: number[], ends: number[], axes?: number[], steps?: number[]) {
  const out = [...x];
  const ax = axes ?? starts.map((_, i) => i);
  ax.forEach((a0, i) => {
    const a = normAxis(a0, x.length);
    const dim = x[a];
    const step = steps ? steps[i] : 1;
    if (typeof dim !== 'number') {
      if (starts[i] === 0 && ends[i] >= 2 ** 31 - 1 && step === 1) return;
      throw new Error(`Slice: symbolic dim ${dim} on axis ${a}`);
    }
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let s = starts[i] < 0 ? starts[i] + dim : starts[i];
    let e = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (step > 0) {
      s = clamp(s, 0, dim);
      e = clamp(e, 0, dim);
      out[a] = Math.max(0, Math.ceil((e - s) / step));
    } else {
      s = clamp(s, -1, dim - 1);
      e = clamp(e, -1, dim - 1);
      out[a] = Math.max(0, Math.ceil((e - s) / step));
    }
  });
  return out;
}

export const shapeRules: Record<string, ShapeRule> = {
  Identity: same,
  Neg: same,
  Abs: same,
  Sqrt: same,
  Reciprocal: same,
  Exp: same,
  Log: same,
  Tanh: same,
  Sigmoid: same,
  Relu: same,
  Erf: same,
  Sin: same,
  Cos: same,
  Sign: same,
  Floor: same,
  Ceil: same,
  Round: same,
  Softplus: same,
  LeakyRelu: same,
  Softmax: same,
  LogSoftmax: same,
  Dropout: same,
  Add: broadcast,
  Sub: broadcast,
  Mul: broadcast,
  Div: broadcast,
  Pow: broadcast,
  Max: broadcast,
  Min: broadcast,
  Mod: broadcast,
  Equal: compare,
  Greater: compare,
  Less: compare,
  GreaterOrEqual: compare,
  LessOrEqual: compare,
  And: broadcast,
  Or: broadcast,
  Not: same,
  Where: (ins) => {
    const c = need(ins[0], 'condition');
    const x = need(ins[1], 'X');
    const y = need(ins[2], 'Y');
    return [{ dtype: x.dtype, shape: broadcastShapes(broadcastShapes(c.shape, x.shape), y.shape) }];
  },
  Cast: (ins, attrs) => {
    const to = getInt(attrs, 'to', 1);
    const map: Record<number, DType> = {
      1: 'float32',
      7: 'int64',
      6: 'int32',
      9: 'bool',
      2: 'uint8',
    };
    const dtype = map[to];
    if (!dtype) throw new Error(`Cast: unsupported target type ${to}`);
    return [{ dtype, shape: [...need(ins[0], 'X').shape] }];
  },
  MatMul: (ins) => {
    const a = need(ins[0], 'A');
    const b = need(ins[1], 'B');
    return [{ dtype: a.dtype, shape: matmulShape(a.shape, b.shape) }];
  },
  Gemm: (ins, attrs) => {
    const a = need(ins[0], 'A').shape;
    const b = need(ins[1], 'B').shape;
    const ta = getInt(attrs, 'transA', 0);
    const tb = getInt(attrs, 'transB', 0);
    const m = ta ? a[1] : a[0];
    const n = tb ? b[0] : b[1];
    return [{ dtype: need(ins[0], 'A').dtype, shape: [m, n] }];
  },
  Conv: (ins, attrs) => {
    const x = need(ins[0], 'X');
    const w = need(ins[1], 'W');
    const p = convParams(attrs, w.shape);
    const nd = p.kernel.length;
    const spatial = p.kernel.map((k, i) =>
      convOut(x.shape[2 + i], k, p.strides[i], p.pads[i], p.pads[i + nd], p.dilations[i]),
    );
    return [{ dtype: x.dtype, shape: [x.shape[0], w.shape[0], ...spatial] }];
  },
  ConvTranspose: (ins, attrs) => {
    const x = need(ins[0], 'X');
    const w = need(ins[1], 'W');
    const p = convParams(attrs, w.shape);
    const nd = p.kernel.length;
    const outPad = getInts(attrs, 'output_padding') ?? Array(nd).fill(0);
    const explicit = getInts(attrs, 'output_shape');
    const spatial = p.kernel.map((k, i) => {
      if (explicit) return explicit[i];
      const s = x.shape[2 + i];
      if (typeof s !== 'number') return s;
      return (
        p.strides[i] * (s - 1) +
        outPad[i] +
        (k - 1) * p.dilations[i] +
        1 -
        p.pads[i] -
        p.pads[i + nd]
      );
    });
    return [{ dtype: x.dtype, shape: [x.shape[0], (w.shape[1] as number) * p.group, ...spatial] }];
  },
  AveragePool: (ins, attrs) => [
    { dtype: need(ins[0], 'X').dtype, shape: poolShape(ins[0]!.shape, attrs) },
  ],
  MaxPool: (ins, attrs) => [
    { dtype: need(ins[0], 'X').dtype, shape: poolShape(ins[0]!.shape, attrs) },
  ],
  GlobalAveragePool: (ins) => {
    const x = need(ins[0], 'X');
    return [{ dtype: x.dtype, shape: [x.shape[0], x.shape[1], ...x.shape.slice(2).map(() => 1)] }];
  },
  Resize: (ins) => {
    const x = need(ins[0], 'X');
    if (ins[3]?.value) return [{ dtype: x.dtype, shape: constInts(ins[3], 'Resize sizes') }];
    const scales = tensorNumbersF(ins[2], 'Resize scales');
    return [
      {
        dtype: x.dtype,
        shape: x.shape.map((d, i) => (typeof d === 'number' ? Math.floor(d * scales[i]) : d)),
      },
    ];
  },
  Reshape: (ins, attrs) => {
    const x = need(ins[0], 'data');
    const target = constInts(ins[1], 'Reshape shape');
    return [
      { dtype: x.dtype, shape: reshapeShape(x.shape, target, getInt(attrs, 'allowzero', 0) === 1) },
    ];
  },
  Flatten: (ins, attrs) => {
    const x = need(ins[0], 'X');
    const axis = getInt(attrs, 'axis', 1);
    const a = axis < 0 ? axis + x.shape.length : axis;
    return [{ dtype: x.dtype, shape: [prod(x.shape.slice(0, a)), prod(x.shape.slice(a))] }];
  },
  Transpose: (ins, attrs) => {
    const x = need(ins[0], 'data');
    const perm = getInts(attrs, 'perm') ?? x.shape.map((_, i) => x.shape.length - 1 - i);
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }];
  },
  Concat: (ins, attrs) => {
    const xs = ins.map((x, i) => need(x, `input ${i}`));
    const axis = normAxis(getInt(attrs, 'axis', 0), xs[0].shape.length);
    const shape = [...xs[0].shape];
    let total: Dim = 0;
    for (const x of xs) {
      const d = x.shape[axis];
      total = typeof total === 'number' && typeof d === 'number' ? total + d : '?';
    }
    shape[axis] = total;
    return [{ dtype: xs[0].dtype, shape }];
  },
  Split: (ins, attrs) => {
    const x = need(ins[0], 'input');
    const axis = normAxis(getInt(attrs, 'axis', 0), x.shape.length);
    const sizes = constInts(ins[1], 'Split split');
    return sizes.map((s) => {
      const shape = [...x.shape];
      shape[axis] = s;
      return { dtype: x.dtype, shape };
    });
  },
  Slice: (ins) => {
    const x = need(ins[0], 'data');
    const starts = constInts(ins[1], 'Slice starts');
    const ends = constInts(ins[2], 'Slice ends');
    const axes = ins[3] ? constInts(ins[3], 'Slice axes') : undefined;
    const steps = ins[4] ? constInts(ins[4], 'Slice steps') : undefined;
    return [{ dtype: x.dtype, shape: sliceShape(x.shape, starts, ends, axes, steps) }];
  },
  Squeeze: (ins) => {
    const x = need(ins[0], 'data');
    const axes = ins[1]
      ? constInts(ins[1], 'Squeeze axes').map((a) => normAxis(a, x.shape.length))
      : x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
    return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !axes.includes(i)) }];
  },
  Unsqueeze: (ins) => {
    const x = need(ins[0], 'data');
    const r = x.shape.length + constInts(ins[1], 'Unsqueeze axes').length;
    const axes = constInts(ins[1], 'Unsqueeze axes').map((a) => normAxis(a, r));
    const out: Dim[] = [];
    let j = 0;
    for (let i = 0; i < r; i++) out.push(axes.includes(i) ? 1 : x.shape[j++]);
    return [{ dtype: x.dtype, shape: out }];
  },
  Expand: (ins) => {
    const x = need(ins[0], 'input');
    const target = constInts(ins[1], 'Expand shape');
    return [{ dtype: x.dtype, shape: broadcastShapes(x.shape, target) }];
  },
  Tile: (ins) => {
    const x = need(ins[0], 'input');
    const reps = constInts(ins[1], 'Tile repeats');
    return [
      {
        dtype: x.dtype,
        shape: x.shape.map((d, i) =>
          typeof d === 'number' ? d * reps[i] : reps[i] === 1 ? d : '?',
        ),
      },
    ];
  },
  Pad: (ins) => {
    const x = need(ins[0], 'data');
    const pads = constInts(ins[1], 'Pad pads');
    const r = x.shape.length;
    return [
      {
        dtype: x.dtype,
        shape: x.shape.map((d, i) => (typeof d === 'number' ? d + pads[i] + pads[i + r] : d)),
      },
    ];
  },
  ReduceSum: (ins, attrs) => {
    const x = need(ins[0], 'data');
    const axes = ins[1] ? constInts(ins[1], 'ReduceSum axes') : undefined;
    if (!axes?.length && getInt(attrs, 'noop_with_empty_axes', 0)) return same(ins, attrs);
    return [
      { dtype: x.dtype, shape: reduceShape(x.shape, axes, getInt(attrs, 'keepdims', 1) === 1) },
    ];
  },
  ReduceMean: reduceAttr,
  ReduceMax: reduceAttr,
  ReduceMin: reduceAttr,
  ReduceSumSquare: reduceAttr,
  ReduceLogSumExp: reduceAttr,
  ArgMax: (ins, attrs) => {
    const x = need(ins[0], 'data');
    const axis = getInt(attrs, 'axis', 0);
    return [
      { dtype: 'int64', shape: reduceShape(x.shape, [axis], getInt(attrs, 'keepdims', 1) === 1) },
    ];
  },
  Gather: (ins, attrs) => {
    const x = need(ins[0], 'data');
    const idx = need(ins[1], 'indices');
    const axis = normAxis(getInt(attrs, 'axis', 0), x.shape.length);
    return [
      {
        dtype: x.dtype,
        shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)],
      },
    ];
  },
  GatherElements: (ins) => [
    { dtype: need(ins[0], 'data').dtype, shape: [...need(ins[1], 'indices').shape] },
  ],
  ScatterElements: same,
  ScatterND: same,
  OneHot: (ins, attrs) => {
    const idx = need(ins[0], 'indices');
    const depth = constInts(ins[1], 'OneHot depth')[0];
    const values = need(ins[2], 'values');
    const axis = getInt(attrs, 'axis', -1);
    const r = idx.shape.length + 1;
    const a = axis < 0 ? axis + r : axis;
    const shape = [...idx.shape];
    shape.splice(a, 0, depth);
    return [{ dtype: values.dtype, shape }];
  },
  Shape: (ins) => [{ dtype: 'int64', shape: [need(ins[0], 'data').shape.length] }],
  ConstantOfShape: (ins, attrs) => {
    const a = attrs['value'];
    const dtype = a && a.t === 'tensor' ? a.v.dtype : 'float32';
    return [{ dtype, shape: constInts(ins[0], 'ConstantOfShape shape') }];
  },
  Constant: (_ins, attrs) => {
    const a = attrs['value'];
    if (!a || a.t !== 'tensor')
      throw new Error('Constant: only the tensor "value" attribute is supported');
    return [{ dtype: a.v.dtype, shape: [...a.v.dims] }];
  },
  BatchNormalization: (ins, attrs) => {
    if (getInt(attrs, 'training_mode', 0))
      throw new Error('BatchNormalization: only inference mode (training_mode=0) is supported');
    return [{ dtype: need(ins[0], 'X').dtype, shape: [...ins[0]!.shape] }];
  },
  InstanceNormalization: (ins) => [
    { dtype: need(ins[0], 'input').dtype, shape: [...ins[0]!.shape] },
  ],
  LayerNormalization: (ins) => [{ dtype: need(ins[0], 'X').dtype, shape: [...ins[0]!.shape] }],
};

function reduceAttr(ins: (InferInput | undefined)[], attrs: Attrs): InferOutput[] {
  const x = need(ins[0], 'data');
  return [
    {
      dtype: x.dtype,
      shape: reduceShape(x.shape, getInts(attrs, 'axes'), getInt(attrs, 'keepdims', 1) === 1),
    },
  ];
}

function tensorNumbersF(inp: InferInput | undefined, what: string): number[] {
  if (!inp?.value) throw new Error(`${what} must be a constant known at build time`);
  return tensorNumbers(inp.value);
}

export function inferShapes(
  op: string,
  inputs: (InferInput | undefined)[],
  attrs: Attrs,
): InferOutput[] {
  const rule = shapeRules[op];
  if (!rule) throw new Error(`no shape inference rule for op ${op}`);
  return rule(inputs, attrs);
}
