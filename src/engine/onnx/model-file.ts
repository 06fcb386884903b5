/**
 * ONNX model files on disk, with or without external data. Past protobuf's 2 GiB limit a model
 * must keep its weights outside the ModelProto: each large initializer then names a file beside
 * the .onnx (`<model>.onnx.data` by default), an offset and a length, as the ONNX external-data
 * spec defines. ORT finds that file relative to the model's path, so such models load by path.
 *
 * Both files are written to temp names, fsynced and renamed (data first), so a reader never sees
 * a model whose data file is missing or half written.
 *
 * Loading by reference (`readModelFile(path, { weights: 'by-reference' })`) keeps externally
 * stored weights on disk: each such initializer is a tensor that remembers its file, offset and
 * length (`fileRefOf`) and reads its bytes only if `data` is asked for. A session built from a
 * graph holding such tensors (`encodeForRuntime`) points ORT at the file, so ORT reads the
 * weights itself and no JS copy of them is ever made (serving SiT-XL/2: 2.7 GB).
 */
import { closeSync, fstatSync, openSync, promises as fs, readSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import {
  ExternalDataReader,
  decodeModel,
  encodeModel,
  isPlainFileName,
  planExternalData,
} from './proto';
import { DType, Graph, Tensor, TensorData, allocData, tensorByteLength } from './types';

/** Where the bytes of a tensor loaded by reference live. */
export interface FileRef {
  /** Absolute path of the external data file. */
  path: string;
  offset: number;
  length: number;
  /** The file's identity when the model was read (inode, size, mtime): a replaced file is refused. */
  stamp: string;
}

const fileRefs = new WeakMap<Tensor, FileRef>();
const loaded = new WeakSet<Tensor>();

/** The file a tensor was loaded from by reference, if it was. */
export function fileRefOf(t: Tensor): FileRef | undefined {
  return fileRefs.get(t);
}

/** False while a tensor loaded by reference has not been read into memory. */
export function isInMemory(t: Tensor): boolean {
  return !fileRefs.has(t) || loaded.has(t);
}

const stampOf = (st: { ino: number; size: number; mtimeMs: number }) =>
  `${st.ino}:${st.size}:${st.mtimeMs}`;

/** Throws unless the file is still the one the model was read from. */
export function checkFileRef(ref: FileRef): void {
  let now: string;
  try {
    now = stampOf(statSync(ref.path));
  } catch (e) {
    throw new Error(`external data file ${ref.path}: ${(e as Error).message}`, { cause: e });
  }
  if (now !== ref.stamp)
    throw new Error(
      `external data file ${ref.path} changed on disk since the model was read; load it again`,
    );
}

function readRef(ref: FileRef, dtype: DType, n: number): TensorData {
  checkFileRef(ref);
  const data = allocData(dtype, n);
  const out = new Uint8Array(data.buffer);
  const fd = openSync(ref.path, 'r');
  try {
    let done = 0;
    while (done < ref.length) {
      const k = readSync(fd, out, done, ref.length - done, ref.offset + done);
      if (!k)
        throw new Error(
          `external data file ${ref.path} ends before byte ${ref.offset + ref.length} (truncated?)`,
        );
      done += k;
    }
  } finally {
    closeSync(fd);
  }
  return data;
}

/** A tensor whose bytes stay in `ref` until `data` is first read (then they are kept). */
function referencedTensor(dtype: DType, dims: number[], ref: FileRef): Tensor {
  let data: TensorData | undefined;
  const n = dims.reduce((a, b) => a * b, 1);
  const t = {
    dtype,
    dims,
    get data(): TensorData {
      if (!data) {
        data = readRef(ref, dtype, n);
        loaded.add(t);
      }
      return data;
    },
  };
  fileRefs.set(t, ref);
  return t;
}

export interface WriteModelOptions {
  /**
   * Keep initializers of at least `threshold` bytes (default 1024) in the file `location`
   * (default `<model file name>.data`) beside the model.
   */
  externalData?: { location?: string; threshold?: number } | boolean;
  producer?: string;
}

async function writeTemp(
  path: string,
  write: (fh: fs.FileHandle) => Promise<void>,
): Promise<string> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, 'w');
  try {
    await write(fh);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  return tmp;
}

/** Write `graph` to `path`; returns the external data file's path when one was written. */
export async function writeModelFile(
  path: string,
  graph: Graph,
  opts: WriteModelOptions = {},
): Promise<{ model: string; data?: string }> {
  const ext = opts.externalData === true ? {} : opts.externalData || undefined;
  if (!ext) {
    const tmp = await writeTemp(path, (fh) =>
      fh.writeFile(encodeModel(graph, { producer: opts.producer })),
    );
    await fs.rename(tmp, path);
    return { model: path };
  }
  const plan = planExternalData(graph, {
    location: ext.location ?? `${basename(path)}.data`,
    threshold: ext.threshold,
  });
  const dataPath = join(dirname(path), plan.location);
  const dataTmp = await writeTemp(dataPath, async (fh) => {
    for (const [name, e] of plan.entries) {
      const t = graph.initializers.get(name);
      if (!t) continue;
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, e.offset + done);
        done += bytesWritten;
      }
    }
    await fh.truncate(plan.size);
  });
  try {
    const modelTmp = await writeTemp(path, (fh) =>
      fh.writeFile(encodeModel(graph, { producer: opts.producer, externalData: plan })),
    );
    await fs.rename(dataTmp, dataPath);
    await fs.rename(modelTmp, path);
  } catch (e) {
    await fs.rm(dataTmp, { force: true });
    throw e;
  }
  return { model: path, data: dataPath };
}

export interface ReadModelOptions {
  /**
   * `copy` (default): external weights are read into memory. `by-reference`: they stay in their
   * file (see the module comment); for serving, where only ORT needs them.
   */
  weights?: 'copy' | 'by-reference';
}

/**
 * Read a model by path; initializers in external files are read from beside it. Locations with
 * directory parts are refused (a model must not read files elsewhere on the machine).
 */
export async function readModelFile(path: string, opts: ReadModelOptions = {}): Promise<Graph> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  const fds = new Map<string, number>();
  const open = (location: string): { file: string; fd: number } => {
    if (!isPlainFileName(location))
      throw new Error(`external data location ${location} is not a file beside the model`);
    const file = join(dirname(resolve(path)), location);
    let fd = fds.get(location);
    if (fd === undefined) {
      try {
        fd = openSync(file, 'r');
      } catch (e) {
        throw new Error(`external data file ${file}: ${(e as Error).message}`, { cause: e });
      }
      fds.set(location, fd);
    }
    return { file, fd };
  };
  const external: ExternalDataReader = (location, offset, length) => {
    const { file, fd } = open(location);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, offset + done);
      if (!n)
        throw new Error(
          `external data file ${file} ends before byte ${offset + length} (truncated?)`,
        );
      done += n;
    }
    return out;
  };
  const reference =
    opts.weights === 'by-reference'
      ? (r: { location: string; offset: number; length: number }, dtype: DType, dims: number[]) => {
          const { file, fd } = open(r.location);
          const st = fstatSync(fd);
          if (r.offset + r.length > st.size)
            throw new Error(
              `external data file ${file} ends before byte ${r.offset + r.length} (truncated?)`,
            );
          const ref = { path: file, offset: r.offset, length: r.length, stamp: stampOf(st) };
          return referencedTensor(dtype, dims, ref);
        }
      : undefined;
  try {
    return decodeModel(bytes, { external, reference });
  } catch (e) {
    throw new Error(`${path}: not a valid ONNX model (${(e as Error).message})`, { cause: e });
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}

/** Below protobuf's 2 GiB limit with room for the graph itself. */
export const INLINE_LIMIT = 1.75 * 2 ** 30;

/** A model encoded for a runtime that takes external data as in-memory buffers (ORT). */
export interface RuntimeEncoding {
  model: Uint8Array;
  /** Present when the weights would not fit in the ModelProto: one buffer per large tensor. */
  external?: { location: string; data: Uint8Array }[];
  /**
   * Present when tensors were loaded by reference: the folder ORT resolves their files in
   * (session option model_external_initializers_file_folder_path) and the references.
   */
  files?: { folder: string; refs: FileRef[] };
}

/**
 * Encode a graph for a session. Tensors loaded by reference stay in their file: the model points
 * at it (location, offset, length) and ORT reads them from there. Of the rest, up to
 * `inlineLimit` bytes go in the ModelProto; past it (SiT-XL/2 held in memory: 2.7 GB) every large
 * initializer is handed to ORT as its own external-data buffer (SessionOptions.externalData), a
 * view of the tensor: no second copy of the weights is made on the JS side.
 */
export function encodeForRuntime(g: Graph, inlineLimit = INLINE_LIMIT): RuntimeEncoding {
  const entries = new Map<string, { offset: number; length: number; location: string }>();
  const refs: FileRef[] = [];
  let folder: string | undefined;
  let bytes = 0;
  for (const [name, t] of g.initializers) {
    const ref = fileRefOf(t);
    if (!ref) {
      bytes += tensorByteLength(t);
      continue;
    }
    const dir = dirname(ref.path);
    if (folder !== undefined && folder !== dir)
      throw new Error(
        `graph ${g.name}: initializers referenced from two folders (${folder}, ${dir}); ` +
          'a session resolves external data in one',
      );
    folder = dir;
    checkFileRef(ref);
    entries.set(name, { offset: ref.offset, length: ref.length, location: basename(ref.path) });
    refs.push(ref);
  }
  const files = folder === undefined ? undefined : { folder, refs };
  if (bytes <= inlineLimit && !files) return { model: encodeModel(g) };
  const external: { location: string; data: Uint8Array }[] = [];
  if (bytes > inlineLimit)
    for (const [name, t] of g.initializers) {
      if (entries.has(name) || tensorByteLength(t) < 1024) continue;
      const location = `w${external.length}.bin`;
      entries.set(name, { offset: 0, length: t.data.byteLength, location });
      external.push({
        location,
        data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      });
    }
  const plan = { location: 'w.bin', entries, size: 0 };
  return {
    model: encodeModel(g, { externalData: plan }),
    ...(external.length ? { external } : {}),
    ...(files ? { files } : {}),
  };
}
