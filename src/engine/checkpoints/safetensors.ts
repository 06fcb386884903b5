/**
 * safetensors (huggingface/safetensors, format spec in its README): an 8-byte little-endian
 * header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__": {string: string}}`, then the tensor bytes, offsets relative to 8 + N. Every
 * field is checked before any tensor is read; tensors are read from the file on demand.
 */
import { promises as fs } from 'node:fs';
import { ITEM_SIZE, StoredDType, toFloat32 } from './dtypes';
import { CheckpointError } from './errors';
import { StoredTensor, numelOf } from './stored-tensor';

const DTYPES: Record<string, StoredDType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const CODES = Object.fromEntries(Object.entries(DTYPES).map(([k, v]) => [v, k])) as Record<
  StoredDType,
  string
>;

/** The JSON header is capped so a corrupt length cannot make the reader allocate gigabytes. */
const MAX_HEADER = 100 * 2 ** 20;

export interface SafetensorsFile {
  path: string;
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
  close(): Promise<void>;
}

/** Reads `length` bytes at `offset` of an open file. */
async function readAt(fh: fs.FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (!bytesRead) throw new Error(`file ends ${length - done} bytes early`);
    done += bytesRead;
  }
  return buf;
}

export function parseSafetensorsHeader(
  file: string,
  headerBytes: Uint8Array,
  payloadSize: number,
): {
  entries: Map<string, { dtype: StoredDType; shape: number[]; begin: number; end: number }>;
  metadata: Record<string, string>;
} {
  const bad = (problem: string): never => {
    throw new CheckpointError(file, `safetensors header: ${problem}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    return bad(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('not a JSON object');
  const entries = new Map<
    string,
    { dtype: StoredDType; shape: number[]; begin: number; end: number }
  >();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        bad('__metadata__ not an object');
      metadata = Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]),
      );
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) bad(`tensor ${name} is not an object`);
    const dtype = DTYPES[String(e.dtype)];
    if (!dtype)
      bad(`tensor ${name} has dtype ${JSON.stringify(e.dtype)} (read: ${Object.keys(DTYPES)})`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      bad(`tensor ${name} has shape ${JSON.stringify(shape)}`);
    const off = e.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((o) => Number.isInteger(o) && o >= 0) ||
      off[0] > off[1]
    )
      bad(`tensor ${name} has data_offsets ${JSON.stringify(off)}`);
    const [begin, end] = off as [number, number];
    const want = numelOf(shape as number[]) * ITEM_SIZE[dtype];
    if (end - begin !== want)
      bad(`tensor ${name}: ${end - begin} bytes for ${dtype}[${String(shape)}], needs ${want}`);
    if (end > payloadSize)
      bad(`tensor ${name} ends at byte ${end} of a ${payloadSize}-byte payload (truncated file?)`);
    entries.set(name, { dtype, shape: shape as number[], begin, end });
  }
  return { entries, metadata };
}

export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(path, 'r');
  } catch (e) {
    throw new CheckpointError(path, `cannot open (${(e as Error).message})`, { cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    if (size < 8) throw new CheckpointError(path, `${size} bytes: too short for safetensors`);
    const n64 = new DataView((await readAt(fh, 0, 8)).buffer).getBigUint64(0, true);
    if (n64 > BigInt(Math.min(MAX_HEADER, size - 8)))
      throw new CheckpointError(
        path,
        `safetensors header length ${n64} exceeds the file (${size} bytes) or ${MAX_HEADER}`,
      );
    const n = Number(n64);
    const payload = 8 + n;
    const { entries, metadata } = parseSafetensorsHeader(
      path,
      await readAt(fh, 8, n),
      size - payload,
    );
    const tensors = new Map<string, StoredTensor>();
    for (const [name, e] of entries)
      tensors.set(name, {
        dtype: e.dtype,
        shape: e.shape,
        toFloat32: async () => {
          try {
            const bytes = await readAt(fh, payload + e.begin, e.end - e.begin);
            return toFloat32(e.dtype, bytes, numelOf(e.shape));
          } catch (err) {
            throw new CheckpointError(path, `tensor ${name}: ${(err as Error).message}`, {
              cause: err,
            });
          }
        },
      });
    return { path, tensors, metadata, close: () => fh.close() };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Encode float32 tensors as safetensors bytes (tests and tools; offsets in insertion order). */
export function encodeSafetensors(
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of tensors) {
    header[name] = {
      dtype: CODES.float32,
      shape: t.shape,
      data_offsets: [off, off + t.data.byteLength],
    };
    off += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the payload starts 8-byte aligned, as the reference writer does.
  const h = new Uint8Array(json.length + ((8 - ((8 + json.length) % 8)) % 8)).fill(0x20);
  h.set(json);
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let p = 8 + h.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), p);
    p += t.data.byteLength;
  }
  return out;
}
