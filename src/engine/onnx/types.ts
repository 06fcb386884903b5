/**
 * The engine's in-memory graph: a thin, typed mirror of ONNX's GraphProto.
 *
 * Every value carries a static dtype and shape. A dimension is a number, or a string naming a
 * symbolic dimension (e.g. "N" for the batch) that stays unknown until a session runs.
 */

export type DType = 'float32' | 'int64' | 'int32' | 'bool' | 'uint8';
export type Dim = number | string;
export type Shape = Dim[];

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

/** A concrete tensor: initializers, constants, checkpoints. */
export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TensorData;
}

/** ONNX attributes keep INT and FLOAT apart, so the tag is explicit. */
export type Attr =
  | { t: 'i'; v: number }
  | { t: 'f'; v: number }
  | { t: 's'; v: string }
  | { t: 'ints'; v: number[] }
  | { t: 'floats'; v: number[] }
  | { t: 'tensor'; v: Tensor };

export type Attrs = Record<string, Attr>;

export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: Shape;
}

export interface Node {
  op: string;
  name: string;
  /** '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Attrs;
}

export interface Graph {
  name: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  /** Parameters and constants, by name. Insertion order is kept in the ONNX file. */
  initializers: Map<string, Tensor>;
  nodes: Node[];
  /** dtype and shape of every value in the graph (inputs, initializers, node outputs). */
  values: Map<string, ValueInfo>;
  /** Free-form metadata written to ModelProto.metadata_props. */
  metadata?: Record<string, string>;
}

export const OPSET = 17;

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function isStatic(shape: Shape): shape is number[] {
  return shape.every((d) => typeof d === 'number');
}

export function staticShape(shape: Shape, what: string): number[] {
  if (!isStatic(shape)) throw new Error(`${what}: needs a static shape, got [${shape.join(', ')}]`);
  return shape;
}

export function allocData(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'bool':
    case 'uint8':
      return new Uint8Array(n);
  }
}

const DTYPE_BYTES: Record<DType, number> = { float32: 4, int64: 8, int32: 4, bool: 1, uint8: 1 };

/**
 * Size of a tensor's data from its dtype and dims, without touching `data` (a tensor loaded by
 * reference reads its bytes from disk only when `data` is asked for; see onnx/model-file.ts).
 */
export function tensorByteLength(t: Pick<Tensor, 'dtype' | 'dims'>): number {
  return numel(t.dims) * DTYPE_BYTES[t.dtype];
}

export function tensor(dtype: DType, dims: number[], values?: ArrayLike<number>): Tensor {
  const n = numel(dims);
  const data = allocData(dtype, n);
  if (values) {
    if (values.length !== n) throw new Error(`tensor: ${values.length} values for dims [${dims}]`);
    if (data instanceof BigInt64Array) for (let i = 0; i < n; i++) data[i] = BigInt(values[i]);
    else for (let i = 0; i < n; i++) data[i] = values[i];
  }
  return { dtype, dims, data };
}

/** Read any tensor as plain numbers (int64 through Number: fine for shapes and indices). */
export function tensorNumbers(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x));
}

export const attr = {
  i: (v: number): Attr => ({ t: 'i', v }),
  f: (v: number): Attr => ({ t: 'f', v }),
  s: (v: string): Attr => ({ t: 's', v }),
  ints: (v: number[]): Attr => ({ t: 'ints', v }),
  floats: (v: number[]): Attr => ({ t: 'floats', v }),
  tensor: (v: Tensor): Attr => ({ t: 'tensor', v }),
};

export function getInt(attrs: Attrs, name: string, dflt: number): number {
  const a = attrs[name];
  if (!a) return dflt;
  if (a.t !== 'i') throw new Error(`attribute ${name}: expected int, got ${a.t}`);
  return a.v;
}

export function getFloat(attrs: Attrs, name: string, dflt: number): number {
  const a = attrs[name];
  if (!a) return dflt;
  if (a.t !== 'f') throw new Error(`attribute ${name}: expected float, got ${a.t}`);
  return a.v;
}

export function getInts(attrs: Attrs, name: string): number[] | undefined {
  const a = attrs[name];
  if (!a) return undefined;
  if (a.t !== 'ints') throw new Error(`attribute ${name}: expected ints, got ${a.t}`);
  return a.v;
}

export function getString(attrs: Attrs, name: string, dflt: string): string {
  const a = attrs[name];
  if (!a) return dflt;
  if (a.t !== 's') throw new Error(`attribute ${name}: expected string, got ${a.t}`);
  return a.v;
}
