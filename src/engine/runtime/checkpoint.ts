/**
 * Checkpoints are ONNX files: the parameters are initializers (by their graph names), optimizer
 * state and EMA shadows are extra initializers under `optim/<slot>/<param>` and `ema/<param>`,
 * and ModelProto.metadata_props carries `prg.checkpoint`, a JSON record with step, epoch, the
 * parameter names, optimizer kind/hyper-parameters and a sha256 of every tensor's bytes.
 *
 * Given a graph, the file is that graph with the parameters written in, so a checkpoint of a
 * velocity net is also a runnable model. Files are written to a temp path, fsynced and renamed.
 * Tensors travel as raw little-endian bytes, so save → load is bit-exact (NaN payloads included).
 * metadata_props is encoded after the graph, so a truncated file loses the record (or fails to
 * parse) and loading says so instead of returning partial parameters.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { decodeModel, encodeModel } from '../onnx/proto';
import { Graph, Tensor } from '../onnx/types';
import { OptimizerKind, OptimizerState } from './optim';
import { ParamStore } from './params';

export const CHECKPOINT_KEY = 'prg.checkpoint';
const FORMAT = 1;

export type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

export interface CheckpointData {
  params: ParamStore;
  step?: number;
  epoch?: number;
  optimizer?: OptimizerState;
  ema?: { shadow: ParamStore; updates: number };
  /** Anything else worth keeping (config, metrics), JSON. */
  extra?: Record<string, Json>;
  /** Write the parameters into this graph (its other initializers and nodes are kept). */
  graph?: Graph;
}

export interface LoadedCheckpoint {
  params: ParamStore;
  step: number;
  epoch: number;
  optimizer?: OptimizerState;
  ema?: { shadow: ParamStore; updates: number };
  extra: Record<string, Json>;
  /** The stored graph (no nodes for a parameter-only checkpoint), state tensors removed. */
  graph: Graph;
}

interface Record1 {
  format: number;
  step: number;
  epoch: number;
  params: string[];
  optimizer: { kind: OptimizerKind; step: number; hyper: Record<string, number | boolean> } | null;
  ema: { updates: number } | null;
  extra: Record<string, Json>;
  sha256: string;
}

const OPTIM = 'optim/';
const EMA = 'ema/';

function digest(tensors: Iterable<[string, Tensor]>): string {
  const h = createHash('sha256');
  for (const [name, t] of tensors) {
    h.update(name);
    h.update(JSON.stringify(t.dims));
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

const f32 = (dims: readonly number[], data: Float32Array): Tensor => ({
  dtype: 'float32',
  dims: [...dims],
  data,
});

export function encodeCheckpoint(c: CheckpointData): Uint8Array {
  const base: Graph = c.graph
    ? c.params.writeTo(c.graph)
    : {
        name: 'checkpoint',
        inputs: [],
        outputs: [],
        nodes: [],
        values: new Map(),
        initializers: new Map(Object.entries(c.params.tensors())),
      };
  const initializers = new Map(base.initializers);
  const stored: [string, Tensor][] = [];
  const put = (name: string, t: Tensor) => {
    if (initializers.has(name) && !c.params.has(name))
      throw new Error(`checkpoint: tensor name ${name} is already used by the graph`);
    initializers.set(name, t);
    stored.push([name, t]);
  };
  for (const p of c.params) stored.push([p.name, f32(p.dims, p.data)]);
  if (c.optimizer)
    for (const [k, v] of c.optimizer.slots) {
      const pname = k.slice(k.indexOf('/') + 1);
      const dims = c.params.has(pname) ? c.params.get(pname).dims : [v.length];
      put(OPTIM + k, f32(dims, v));
    }
  if (c.ema) for (const p of c.ema.shadow) put(EMA + p.name, f32(p.dims, p.data));
  const rec: Record1 = {
    format: FORMAT,
    step: c.step ?? 0,
    epoch: c.epoch ?? 0,
    params: c.params.names(),
    optimizer: c.optimizer
      ? { kind: c.optimizer.kind, step: c.optimizer.step, hyper: c.optimizer.hyper }
      : null,
    ema: c.ema ? { updates: c.ema.updates } : null,
    extra: c.extra ?? {},
    sha256: digest(stored),
  };
  const metadata = { ...(base.metadata ?? {}), [CHECKPOINT_KEY]: JSON.stringify(rec) };
  return encodeModel({ ...base, initializers, metadata });
}

export function decodeCheckpoint(bytes: Uint8Array, where = 'checkpoint'): LoadedCheckpoint {
  let g: Graph;
  try {
    g = decodeModel(bytes);
  } catch (e) {
    throw new Error(`${where}: cannot be read (${(e as Error).message}); truncated or not ONNX?`, {
      cause: e,
    });
  }
  const raw = g.metadata?.[CHECKPOINT_KEY];
  if (raw === undefined)
    throw new Error(
      `${where}: no ${CHECKPOINT_KEY} metadata; not a PRG checkpoint, or the file is truncated`,
    );
  let rec: Record1;
  try {
    rec = JSON.parse(raw) as Record1;
  } catch (e) {
    throw new Error(`${where}: ${CHECKPOINT_KEY} metadata is not JSON`, { cause: e });
  }
  if (rec.format !== FORMAT || !Array.isArray(rec.params))
    throw new Error(`${where}: unsupported checkpoint format ${String(rec.format)}`);
  const stored: [string, Tensor][] = [];
  const take = (name: string): Tensor => {
    const t = g.initializers.get(name);
    if (!t) throw new Error(`${where}: tensor ${name} is missing`);
    if (t.dtype !== 'float32') throw new Error(`${where}: tensor ${name} is ${t.dtype}`);
    stored.push([name, t]);
    return t;
  };
  const params = ParamStore.fromTensors(rec.params.map((n) => [n, take(n)]));
  let optimizer: OptimizerState | undefined;
  const initializers = new Map(g.initializers);
  if (rec.optimizer) {
    const slots = new Map<string, Float32Array>();
    for (const k of g.initializers.keys())
      if (k.startsWith(OPTIM)) {
        slots.set(k.slice(OPTIM.length), (take(k).data as Float32Array).slice());
        initializers.delete(k);
      }
    optimizer = { ...rec.optimizer, slots };
  }
  let ema: LoadedCheckpoint['ema'];
  if (rec.ema) {
    const shadow = new ParamStore();
    for (const k of g.initializers.keys())
      if (k.startsWith(EMA)) {
        const t = take(k);
        shadow.set(k.slice(EMA.length), t.dims, (t.data as Float32Array).slice());
        initializers.delete(k);
      }
    ema = { shadow, updates: rec.ema.updates };
  }
  if (digest(stored) !== rec.sha256)
    throw new Error(`${where}: content digest mismatch; the file is corrupted`);
  const metadata = { ...g.metadata };
  delete metadata[CHECKPOINT_KEY];
  return {
    params,
    step: rec.step,
    epoch: rec.epoch,
    optimizer,
    ema,
    extra: rec.extra ?? {},
    graph: { ...g, initializers, metadata },
  };
}

/** Write `bytes` to `path` atomically: temp file in the same directory, fsync, rename. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, 'w');
  try {
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw new Error(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

export async function saveCheckpoint(path: string, c: CheckpointData): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(c));
}

export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    throw new Error(`checkpoint ${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  return decodeCheckpoint(bytes, `checkpoint ${path}`);
}
