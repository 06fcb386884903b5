/**
 * ONNX I/O: our Graph <-> ModelProto bytes (onnx-proto's generated protobufjs code).
 * Reading checks what it relies on and names what is wrong, so malformed bytes give an Error,
 * never a crash deeper in.
 */
import { onnx } from 'onnx-proto';
import { inferShapes } from './shape';
import {
  Attr,
  Attrs,
  DType,
  Dim,
  Graph,
  Node,
  OPSET,
  Tensor,
  ValueInfo,
  allocData,
  numel,
  tensorByteLength,
} from './types';

const CODE: Record<DType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9 };
const DTYPE: Record<number, DType> = {
  1: 'float32',
  2: 'uint8',
  6: 'int32',
  7: 'int64',
  9: 'bool',
};

type LongLike = number | { toNumber(): number };
const num = (x: LongLike | null | undefined): number =>
  x === null || x === undefined ? 0 : typeof x === 'number' ? x : x.toNumber();

function tensorToProto(name: string, t: Tensor): onnx.ITensorProto {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dataType: CODE[t.dtype], dims: t.dims, rawData: bytes };
}

/**
 * Reads `length` bytes at `offset` of the external data file `location` (a name relative to the
 * .onnx file, as the ONNX external-data spec defines it).
 */
export type ExternalDataReader = (location: string, offset: number, length: number) => Uint8Array;

/** The external_data entries of a tensor: location, offset (default 0), length. */
function externalRef(p: onnx.ITensorProto, where: string) {
  const kv = new Map((p.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location) throw new Error(`${where}: external data without a location`);
  const offset = Number(kv.get('offset') ?? 0);
  const length = kv.has('length') ? Number(kv.get('length')) : undefined;
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new Error(`${where}: external data offset ${kv.get('offset')}`);
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0))
    throw new Error(`${where}: external data length ${kv.get('length')}`);
  return { location, offset, length };
}

/**
 * Makes the tensor for an externally stored initializer without reading its bytes (loading by
 * reference, model-file.ts); `undefined` falls back to reading them.
 */
export type ExternalTensorFactory = (
  ref: { location: string; offset: number; length: number },
  dtype: DType,
  dims: number[],
) => Tensor | undefined;

function tensorFromProto(
  p: onnx.ITensorProto,
  where: string,
  external?: ExternalDataReader,
  known?: Tensor,
  reference?: ExternalTensorFactory,
): Tensor {
  const dtype = DTYPE[p.dataType ?? 0];
  if (!dtype) throw new Error(`${where}: unsupported tensor data type ${p.dataType}`);
  const dims = (p.dims ?? []).map(num);
  const n = numel(dims);
  const external_ = p.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
  // An in-memory round trip hands back the very tensor it left out (no copy of the weights).
  if (external_ && known && known.dtype === dtype && known.dims.join() === dims.join())
    return known;
  if (external_ && reference) {
    const ref = externalRef(p, where);
    const length = tensorByteLength({ dtype, dims });
    if (ref.length !== undefined && ref.length !== length)
      throw new Error(`${where}: external length ${ref.length}, dims [${dims}] need ${length}`);
    const t = reference({ location: ref.location, offset: ref.offset, length }, dtype, dims);
    if (t) return t;
  }
  const data = allocData(dtype, n);
  if (external_) {
    const ref = externalRef(p, where);
    if (!external)
      throw new Error(
        `${where}: stored in the external file ${ref.location}; load the model by its path`,
      );
    if (ref.length !== undefined && ref.length !== data.byteLength)
      throw new Error(
        `${where}: external length ${ref.length}, dims [${dims}] need ${data.byteLength}`,
      );
    new Uint8Array(data.buffer).set(external(ref.location, ref.offset, data.byteLength));
  } else if (p.rawData && p.rawData.length) {
    if (p.rawData.length !== data.byteLength)
      throw new Error(
        `${where}: raw data has ${p.rawData.length} bytes, dims [${dims}] need ${data.byteLength}`,
      );
    // Copy: rawData may be unaligned inside the protobuf buffer.
    new Uint8Array(data.buffer).set(p.rawData);
  } else if (dtype === 'float32') {
    const src = p.floatData ?? [];
    if (src.length !== n) throw new Error(`${where}: ${src.length} floats for dims [${dims}]`);
    (data as Float32Array).set(src);
  } else if (dtype === 'int64') {
    const src = p.int64Data ?? [];
    if (src.length !== n) throw new Error(`${where}: ${src.length} int64s for dims [${dims}]`);
    src.forEach((v, i) => ((data as BigInt64Array)[i] = BigInt(num(v as LongLike))));
  } else {
    const src = p.int32Data ?? [];
    if (src.length !== n) throw new Error(`${where}: ${src.length} int32s for dims [${dims}]`);
    src.forEach((v, i) => ((data as Int32Array | Uint8Array)[i] = v));
  }
  return { dtype, dims, data };
}

function attrToProto(name: string, a: Attr): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.t) {
    case 'i':
      return { name, type: T.INT, i: a.v };
    case 'f':
      return { name, type: T.FLOAT, f: a.v };
    case 's':
      return { name, type: T.STRING, s: new TextEncoder().encode(a.v) };
    case 'ints':
      return { name, type: T.INTS, ints: a.v };
    case 'floats':
      return { name, type: T.FLOATS, floats: a.v };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorToProto('', a.v) };
  }
}

function attrFromProto(p: onnx.IAttributeProto, where: string): Attr {
  const T = onnx.AttributeProto.AttributeType;
  switch (p.type) {
    case T.INT:
      return { t: 'i', v: num(p.i as LongLike) };
    case T.FLOAT:
      return { t: 'f', v: p.f ?? 0 };
    case T.STRING:
      return { t: 's', v: new TextDecoder().decode(p.s ?? new Uint8Array()) };
    case T.INTS:
      return { t: 'ints', v: (p.ints ?? []).map((x) => num(x as LongLike)) };
    case T.FLOATS:
      return { t: 'floats', v: p.floats ?? [] };
    case T.TENSOR:
      return { t: 'tensor', v: tensorFromProto(p.t ?? {}, where) };
    default:
      throw new Error(`${where}: attribute ${p.name} has unsupported type ${p.type}`);
  }
}

function valueInfoToProto(v: ValueInfo): onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: CODE[v.dtype],
        shape: {
          dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

function valueInfoFromProto(p: onnx.IValueInfoProto, where: string): ValueInfo {
  const tt = p.type?.tensorType;
  if (!p.name) throw new Error(`${where}: value without a name`);
  if (!tt) throw new Error(`${where}: ${p.name} is not a tensor`);
  const dtype = DTYPE[tt.elemType ?? 0];
  if (!dtype) throw new Error(`${where}: ${p.name} has unsupported element type ${tt.elemType}`);
  const shape: Dim[] = (tt.shape?.dim ?? []).map((d, i) =>
    d.dimParam
      ? d.dimParam
      : d.dimValue !== null && d.dimValue !== undefined
        ? num(d.dimValue as LongLike)
        : `${p.name}_d${i}`,
  );
  return { name: p.name, dtype, shape };
}

/**
 * Where initializers go when a model uses external data (needed past protobuf's 2 GiB limit):
 * every initializer of at least `threshold` bytes is placed in the file `location` beside the
 * .onnx, at an offset aligned to `align` bytes (the ONNX convention that lets runtimes map it).
 */
export interface ExternalDataLayout {
  location: string;
  threshold?: number;
  align?: number;
}

/** Initializer name → [offset, length] in the external file, and the file's total size. */
export interface ExternalDataPlan {
  location: string;
  /** `location` per entry overrides the plan's (one in-memory buffer per tensor). */
  entries: Map<string, { offset: number; length: number; location?: string }>;
  size: number;
}

export function planExternalData(g: Graph, layout: ExternalDataLayout): ExternalDataPlan {
  if (!isPlainFileName(layout.location))
    throw new Error(`external data location must be a plain file name, got ${layout.location}`);
  const threshold = layout.threshold ?? 1024;
  const align = layout.align ?? 4096;
  const entries = new Map<string, { offset: number; length: number }>();
  let size = 0;
  for (const [name, t] of g.initializers) {
    const length = tensorByteLength(t);
    if (length < threshold) continue;
    size = Math.ceil(size / align) * align;
    entries.set(name, { offset: size, length });
    size += length;
  }
  return { location: layout.location, entries, size };
}

/** A name without directory parts: external data must sit beside its model. */
export function isPlainFileName(s: string): boolean {
  return s !== '' && s !== '.' && s !== '..' && !/[\\/]/.test(s) && !s.includes('\0');
}

export function encodeModel(
  g: Graph,
  opts: { producer?: string; externalData?: ExternalDataPlan } = {},
): Uint8Array {
  const attrsToProto = (attrs: Attrs) => Object.entries(attrs).map(([k, a]) => attrToProto(k, a));
  const ext = opts.externalData;
  const initializerToProto = (k: string, t: Tensor): onnx.ITensorProto => {
    const e = ext?.entries.get(k);
    if (!e || !ext) return tensorToProto(k, t);
    return {
      name: k,
      dataType: CODE[t.dtype],
      dims: t.dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: e.location ?? ext.location },
        { key: 'offset', value: String(e.offset) },
        { key: 'length', value: String(e.length) },
      ],
    };
  };
  const model: onnx.IModelProto = {
    irVersion: 8,
    producerName: opts.producer ?? 'prg-engine',
    opsetImport: [{ domain: '', version: OPSET }],
    metadataProps: Object.entries(g.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: g.name,
      node: g.nodes.map((n) => ({
        opType: n.op,
        name: n.name,
        input: n.inputs,
        output: n.outputs,
        attribute: attrsToProto(n.attrs),
      })),
      initializer: [...g.initializers].map(([k, t]) => initializerToProto(k, t)),
      input: g.inputs.map(valueInfoToProto),
      output: g.outputs.map(valueInfoToProto),
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/**
 * Parse ONNX bytes into a Graph, re-inferring every intermediate shape. Initializers stored as
 * external data are read through `opts.external` (model-file.ts supplies one for a path).
 */
export function decodeModel(
  bytes: Uint8Array,
  opts: {
    external?: ExternalDataReader;
    /** Tensors for external initializers, by name (an in-memory encode/decode round trip). */
    tensors?: ReadonlyMap<string, Tensor>;
    /** Tensors for external initializers that keep their bytes on disk (model-file.ts). */
    reference?: ExternalTensorFactory;
  } = {},
): Graph {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`not a valid ONNX model: ${(e as Error).message}`, { cause: e });
  }
  const gp = model.graph;
  if (!gp) throw new Error('not a valid ONNX model: it has no graph');
  for (const o of model.opsetImport ?? [])
    if (o.domain && o.domain !== 'ai.onnx')
      throw new Error(`ONNX model uses unsupported domain ${o.domain}`);
  const initializers = new Map<string, Tensor>();
  const values = new Map<string, ValueInfo>();
  for (const t of gp.initializer ?? []) {
    if (!t.name) throw new Error('ONNX model: initializer without a name');
    const tv = tensorFromProto(
      t,
      `initializer ${t.name}`,
      opts.external,
      opts.tensors?.get(t.name),
      opts.reference,
    );
    initializers.set(t.name, tv);
    values.set(t.name, { name: t.name, dtype: tv.dtype, shape: [...tv.dims] });
  }
  const inputs = (gp.input ?? [])
    .map((v) => valueInfoFromProto(v, 'graph input'))
    .filter((v) => !initializers.has(v.name));
  for (const v of inputs) values.set(v.name, v);
  const nodes: Node[] = (gp.node ?? []).map((n, i) => {
    const where = `node ${n.name || i} (${n.opType})`;
    if (!n.opType) throw new Error(`ONNX model: node ${i} has no op type`);
    if (n.domain && n.domain !== 'ai.onnx')
      throw new Error(`${where}: unsupported domain ${n.domain}`);
    const attrs: Attrs = {};
    for (const a of n.attribute ?? []) attrs[a.name ?? ''] = attrFromProto(a, where);
    return {
      op: n.opType,
      name: n.name || `${n.opType}_${i}`,
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      attrs,
    };
  });
  for (const n of nodes) {
    const ins = n.inputs.map((name) => {
      if (name === '') return undefined;
      const v = values.get(name);
      if (!v)
        throw new Error(
          `ONNX model: node ${n.name} (${n.op}) reads ${name}, which nothing defines before it`,
        );
      return { dtype: v.dtype, shape: v.shape, value: initializers.get(name) };
    });
    const outs = inferShapes(n.op, ins, n.attrs);
    n.outputs.forEach((o, i) => {
      if (o && outs[i]) values.set(o, { name: o, ...outs[i] });
    });
  }
  const outputs = (gp.output ?? []).map((v) => {
    const info = valueInfoFromProto(v, 'graph output');
    const inferred = values.get(info.name);
    if (!inferred) throw new Error(`ONNX model: output ${info.name} is not produced by the graph`);
    return inferred;
  });
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) if (p.key) metadata[p.key] = p.value ?? '';
  return { name: gp.name ?? 'graph', inputs, outputs, initializers, nodes, values, metadata };
}
