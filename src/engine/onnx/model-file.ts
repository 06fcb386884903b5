/**
 * ONNX model files on disk, with or without external data. Past protobuf's 2 GiB limit a model
 * must keep its weights outside the ModelProto: each large initializer then names a file beside
 * the .onnx (`<model>.onnx.data` by default), an offset and a length, as the ONNX external-data
 * spec defines. ORT finds that file relative to the model's path, so such models load by path.
 *
 * Both files are written to temp names, fsynced and renamed (data first), so a reader never sees
 * a model whose data file is missing or half written.
 */
import { closeSync, openSync, promises as fs, readSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import {
  ExternalDataReader,
  decodeModel,
  encodeModel,
  isPlainFileName,
  planExternalData,
} from './proto';
import { Graph } from './types';

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

/**
 * Read a model by path; initializers in external files are read from beside it. Locations with
 * directory parts are refused (a model must not read files elsewhere on the machine).
 */
export async function readModelFile(path: string): Promise<Graph> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  const fds = new Map<string, number>();
  const external: ExternalDataReader = (location, offset, length) => {
    if (!isPlainFileName(location))
      throw new Error(`external data location ${location} is not a file beside the model`);
    const file = join(dirname(path), location);
    let fd = fds.get(location);
    if (fd === undefined) {
      try {
        fd = openSync(file, 'r');
      } catch (e) {
        throw new Error(`external data file ${file}: ${(e as Error).message}`, { cause: e });
      }
      fds.set(location, fd);
    }
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
  try {
    return decodeModel(bytes, { external });
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
}

/**
 * Encode a graph for a session. Up to `inlineLimit` bytes of initializers the model is one
 * ModelProto; past it (SiT-XL/2: 2.7 GB) every large initializer is handed to ORT as its own
 * external-data buffer (SessionOptions.externalData), a view of the tensor: no second copy of the
 * weights is made on the JS side.
 */
export function encodeForRuntime(g: Graph, inlineLimit = INLINE_LIMIT): RuntimeEncoding {
  let bytes = 0;
  for (const t of g.initializers.values()) bytes += t.data.byteLength;
  if (bytes <= inlineLimit) return { model: encodeModel(g) };
  const entries = new Map<string, { offset: number; length: number; location: string }>();
  const external: { location: string; data: Uint8Array }[] = [];
  for (const [name, t] of g.initializers) {
    if (t.data.byteLength < 1024) continue;
    const location = `w${external.length}.bin`;
    entries.set(name, { offset: 0, length: t.data.byteLength, location });
    external.push({
      location,
      data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    });
  }
  const plan = { location: 'w.bin', entries, size: 0 };
  return { model: encodeModel(g, { externalData: plan }), external };
}
