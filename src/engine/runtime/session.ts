/**
 * ONNX Runtime behind a few functions: sessions cached by graph content, inputs checked by name
 * before a run, failures reported with every input's dtype and dims.
 */
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../onnx/proto';
import { DType, Graph, Tensor, TensorData } from '../onnx/types';

export type Feeds = Record<string, Tensor>;

export interface SessionOptions {
  /** Intra-op threads (0 = ORT default: one per core). */
  threads?: number;
}

const ORT_TYPE: Record<DType, ort.Tensor.Type> = {
  float32: 'float32',
  int64: 'int64',
  int32: 'int32',
  bool: 'bool',
  uint8: 'uint8',
};

export function toOrt(t: Tensor): ort.Tensor {
  return new ort.Tensor(ORT_TYPE[t.dtype], t.data as ort.Tensor.DataType, t.dims);
}

export function fromOrt(t: ort.Tensor): Tensor {
  const dtype = t.type as DType;
  if (!(dtype in ORT_TYPE)) throw new Error(`unsupported output type ${t.type}`);
  return { dtype, dims: [...t.dims], data: t.data as TensorData };
}

export class GraphSession {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly graph: Graph,
  ) {}

  static async create(graph: Graph, opts: SessionOptions = {}): Promise<GraphSession> {
    const bytes = encodeModel(graph);
    const session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: opts.threads ?? 0,
      graphOptimizationLevel: 'all',
    });
    return new GraphSession(session, graph);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  async run(feeds: Feeds, fetch?: string[]): Promise<Feeds> {
    const missing = this.session.inputNames.filter((n) => !(n in feeds));
    if (missing.length)
      throw new Error(`graph ${this.graph.name}: missing inputs ${missing.join(', ')}`);
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const n of this.session.inputNames) ortFeeds[n] = toOrt(feeds[n]);
    let out: ort.InferenceSession.ReturnType;
    try {
      out = fetch ? await this.session.run(ortFeeds, fetch) : await this.session.run(ortFeeds);
    } catch (e) {
      const desc = Object.entries(feeds)
        .map(([k, t]) => `${k}:${t.dtype}[${t.dims.join(',')}]`)
        .join(' ');
      throw new Error(
        `graph ${this.graph.name}: run failed (${(e as Error).message}); inputs ${desc}`,
        { cause: e },
      );
    }
    const res: Feeds = {};
    for (const [k, v] of Object.entries(out)) res[k] = fromOrt(v);
    return res;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export function graphKey(graph: Graph): string {
  return createHash('sha256').update(encodeModel(graph)).digest('hex');
}

/** One-shot helper for tests and scripts. */
export async function runGraph(
  graph: Graph,
  feeds: Feeds,
  opts: SessionOptions = {},
): Promise<Feeds> {
  const s = await GraphSession.create(graph, opts);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}
