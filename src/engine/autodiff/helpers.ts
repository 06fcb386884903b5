/**
 * Small graph-building helpers shared by the VJP rules: broadcasting reduction, zeros, and
 * shape-changing ops that also work when a dimension is symbolic (e.g. the batch 'N').
 */
import { GraphBuilder, Value } from '../onnx/builder';
import { Attrs, DType, Shape, isStatic, tensor } from '../onnx/types';

/**
 * Append a node whose output type we already know. The builder infers shapes from constant
 * inputs only; gradients of graphs with a symbolic batch need Reshape/Expand/ConstantOfShape fed
 * by a runtime Shape, and there the output shape is simply the forward value's shape.
 */
export function emit(
  b: GraphBuilder,
  op: string,
  inputs: (Value | undefined)[],
  attrs: Attrs,
  out: { dtype: DType; shape: Shape },
): Value {
  const name = b.fresh(op.toLowerCase());
  b.values.set(name, { name, dtype: out.dtype, shape: [...out.shape] });
  b.nodes.push({
    op,
    name: b.fresh(op),
    inputs: inputs.map((v) => (v ? v.name : '')),
    outputs: [name],
    attrs,
  });
  return b.value(name);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

export const range = (a: number, b: number): number[] =>
  Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);

/**
 * Sum a cotangent over the axes numpy broadcasting expanded, so it matches `shape` (the JAX
 * `_unbroadcast`). Equal symbolic dims count as equal; a 1 against anything else is summed.
 * Leading axes are summed away; inner ones keep a 1, so no Reshape (and no static shape) is needed.
 */
export function unbroadcast(b: GraphBuilder, g: Value, shape: Shape): Value {
  const lead = g.rank - shape.length;
  if (lead < 0)
    throw new Error(`unbroadcast: cotangent [${g.shape}] has lower rank than [${shape}]`);
  const inner = range(0, shape.length)
    .filter((i) => shape[i] === 1 && g.shape[lead + i] !== 1)
    .map((i) => lead + i);
  if (lead === 0 && inner.length === 0) return g;
  if (inner.length === 0) return b.reduceSum(g, range(0, lead), false);
  const s = b.reduceSum(g, [...range(0, lead), ...inner], true);
  return lead ? b.squeeze(s, range(0, lead)) : s;
}

/** A float32 zero tensor of `shape`; `like` (a value of that shape) serves symbolic dims. */
export function zeros(b: GraphBuilder, shape: Shape, like?: Value): Value {
  const value = { value: { t: 'tensor' as const, v: tensor('float32', [1], [0]) } };
  if (isStatic(shape)) return b.op1('ConstantOfShape', [b.ints(shape)], value);
  if (!like) throw new Error(`zeros: symbolic shape [${shape}] needs a value to take it from`);
  return emit(b, 'ConstantOfShape', [b.op1('Shape', [like])], value, {
    dtype: 'float32',
    shape,
  });
}

/** Broadcast `v` to `shape` (Expand); `like` provides symbolic dims at run time. */
export function expandTo(b: GraphBuilder, v: Value, shape: Shape, like: Value): Value {
  if (sameShape(v.shape, shape)) return v;
  if (isStatic(shape)) return b.expand(v, shape);
  return emit(b, 'Expand', [v, b.op1('Shape', [like])], {}, { dtype: v.dtype, shape });
}

/**
 * Reshape `v` to `shape`. Static: a constant target. Symbolic: copy dims in place with 0 when
 * they line up, else read the target from `like` (a value of that shape) at run time.
 */
export function reshapeTo(b: GraphBuilder, v: Value, shape: Shape, like: Value): Value {
  if (sameShape(v.shape, shape)) return v;
  if (isStatic(shape) && !shape.includes(0)) return b.reshape(v, shape);
  const zeroCopy = shape.every(
    (d, i) => (typeof d === 'number' && d !== 0) || (typeof d === 'string' && v.shape[i] === d),
  );
  const target = zeroCopy
    ? b.ints(shape.map((d) => (typeof d === 'number' ? d : 0)))
    : b.op1('Shape', [like]);
  return emit(b, 'Reshape', [v, target], {}, { dtype: v.dtype, shape });
}

/** Swap the last two axes. */
export function transposeLast(b: GraphBuilder, v: Value): Value {
  const r = v.rank;
  return b.transpose(v, [...range(0, r - 2), r - 1, r - 2]);
}

/** The inverse of a permutation. */
export function invPerm(perm: number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/** Number of elements of `x` over the number of `y` as a float32 scalar, at run time. */
export function runtimeRatio(b: GraphBuilder, x: Value, y: Value): Value {
  const size = (v: Value) =>
    b.cast(emit(b, 'Size', [v], {}, { dtype: 'int64', shape: [] }), 'float32');
  return b.div(size(x), size(y));
}
