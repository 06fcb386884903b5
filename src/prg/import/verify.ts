/**
 * `--verify FILE`: reference inputs and outputs made by the upstream code (a safetensors file
 * with x [N, C, H, W], t [N] and v [N, C, H, W] in this project's convention, and int64 labels y
 * for class-conditional graphs; scripts/fixtures/make-import-fixtures.py writes them). The
 * imported graph runs on x, t (, y) and the largest absolute difference to v is reported.
 */
import { openSafetensors } from '../../engine/checkpoints';
import { Graph, Tensor } from '../../engine/onnx/types';
import { runGraph } from '../../engine/runtime/session';
import { sha256File } from './plan';

export interface Reference {
  x: Tensor;
  t: Tensor;
  v: Tensor;
  y?: Tensor;
}

export async function readReference(path: string): Promise<Reference> {
  const f = await openSafetensors(path);
  try {
    const get = async (name: string, rank: number): Promise<Tensor> => {
      const s = f.tensors.get(name);
      if (!s) throw new Error(`${path}: reference file has no tensor ${name}`);
      if (s.shape.length !== rank)
        throw new Error(`${path}: ${name} has shape [${s.shape}], expected rank ${rank}`);
      return { dtype: 'float32', dims: [...s.shape], data: await s.toFloat32() };
    };
    const ref: Reference = { x: await get('x', 4), t: await get('t', 1), v: await get('v', 4) };
    if (ref.x.dims.join() !== ref.v.dims.join() || ref.t.dims[0] !== ref.x.dims[0])
      throw new Error(`${path}: x [${ref.x.dims}], t [${ref.t.dims}], v [${ref.v.dims}] disagree`);
    if (f.tensors.has('y')) {
      const y = await get('y', 1);
      ref.y = {
        dtype: 'int64',
        dims: y.dims,
        data: BigInt64Array.from(y.data as Float32Array, (v) => BigInt(v)),
      };
    }
    return ref;
  } finally {
    await f.close();
  }
}

export interface VerifyResult {
  maxAbsDiff: number;
  /** Largest |v| of the reference, for scale. */
  maxAbsRef: number;
  n: number;
}

export async function verifyVelocity(graph: Graph, ref: Reference): Promise<VerifyResult> {
  const wantsY = graph.inputs.some((i) => i.name === 'y');
  if (wantsY && !ref.y) throw new Error('the graph takes labels y; the reference file has none');
  const feeds: Record<string, Tensor> = { x: ref.x, t: ref.t };
  if (wantsY && ref.y) feeds.y = ref.y;
  const out = await runGraph(graph, feeds);
  const v = out.v.data as Float32Array;
  const want = ref.v.data as Float32Array;
  if (v.length !== want.length)
    throw new Error(`graph gave ${v.length} values, the reference has ${want.length}`);
  return {
    maxAbsDiff: maxAbsDiff(v, want),
    maxAbsRef: want.reduce((m, w) => Math.max(m, Math.abs(w)), 0),
    n: ref.x.dims[0],
  };
}

/** Max abs difference of two float tensors of the same size; NaN anywhere counts as Infinity. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`${a.length} values vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m;
}

export { sha256File };
