/**
 * ONNX Runtime behind a few functions: sessions cached by graph content, inputs checked by name
 * (and dtype / static dims) before a run, failures reported with every input's dtype and dims.
 *
 * Settings come from options first, then the environment: PRG_THREADS (intra-op threads,
 * 0 = one per core), PRG_DEVICE (cpu | cuda, see device.ts), PRG_ORT_SPIN, PRG_ORT_PREPACK,
 * PRG_ORT_CPU_ARENA and PRG_ORT_MEM_PATTERN (below).
 */
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { RuntimeEncoding, encodeForRuntime } from '../onnx/model-file';
import { DType, Graph, Tensor, TensorData } from '../onnx/types';
import {
  Device,
  cudaProviderInstalled,
  deviceFromEnv,
  executionProviders,
  threadsFromEnv,
  warnCpuFallback,
} from './device';

export type Feeds = Record<string, Tensor>;

export type OptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Intra-op threads (0 = ORT default: one per core). Default: PRG_THREADS, else 0. */
  threads?: number;
  /** Default: PRG_DEVICE, else 'cpu'. */
  device?: Device;
  /** ORT graph optimisation level (default 'all'). */
  optimization?: OptimizationLevel;
  /** Write an ORT profile (chrome trace JSON) with this file prefix; see GraphSession.endProfiling. */
  profilePrefix?: string;
  /**
   * Let ORT's intra-op threads spin while waiting for work. Default: PRG_ORT_SPIN=1, else off:
   * on this shared 2-core machine spinning threads fight the neighbours' processes, and with it
   * off the U-Net-XS forward ran ~25% faster under load (interleaved runs, both orders).
   */
  spin?: boolean;
  /**
   * Let ORT pre-pack MatMul/Conv weights into its own buffers. Default: PRG_ORT_PREPACK=0|1, else
   * on. Off, ORT serves weights loaded by reference straight from the mapped file, shared by all
   * sessions of a model; but DiT linears are MatMul(x, Transpose(W)), which ORT folds into a
   * private copy anyway, and bench:import measured SiT-XL/2 (K = 1, batch 1, one session)
   * at 11.2 s per call unpacked vs 8.5 s packed, peak RSS 2930 vs 3058 MB: on wins there.
   */
  prepack?: boolean;
  /**
   * ORT's CPU memory arena: tensors of a run come from chunks the session keeps (and grows) until
   * it is released. Default: PRG_ORT_CPU_ARENA=0|1, else on.
   */
  cpuArena?: boolean;
  /**
   * ORT's memory patterns: the session plans one block per input shape it has seen and keeps it.
   * Default: PRG_ORT_MEM_PATTERN=0|1, else on.
   */
  memPattern?: boolean;
}

/** Options with every default filled in: what a session is actually created with. */
export interface ResolvedSessionOptions {
  threads: number;
  device: Device;
  optimization: OptimizationLevel;
  profilePrefix: string | null;
  spin: boolean;
  prepack: boolean;
  cpuArena: boolean;
  memPattern: boolean;
}

export function resolveSessionOptions(
  opts: SessionOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedSessionOptions {
  const threads = opts.threads ?? threadsFromEnv(env);
  if (!Number.isInteger(threads) || threads < 0)
    throw new Error(`session option threads=${threads}: use an integer >= 0 (0 = one per core)`);
  return {
    threads,
    device: opts.device ?? deviceFromEnv(env),
    optimization: opts.optimization ?? 'all',
    profilePrefix: opts.profilePrefix ?? null,
    spin: opts.spin ?? spinFromEnv(env),
    prepack: opts.prepack ?? onByDefault(env, 'PRG_ORT_PREPACK'),
    cpuArena: opts.cpuArena ?? onByDefault(env, 'PRG_ORT_CPU_ARENA'),
    memPattern: opts.memPattern ?? onByDefault(env, 'PRG_ORT_MEM_PATTERN'),
  };
}

function onByDefault(env: NodeJS.ProcessEnv, name: string): boolean {
  const v = env[name];
  if (v === undefined || v === '' || v === '1') return true;
  if (v === '0') return false;
  throw new Error(`${name}=${JSON.stringify(v)}: use 0 or 1`);
}

function spinFromEnv(env: NodeJS.ProcessEnv): boolean {
  const v = env.PRG_ORT_SPIN;
  if (v === undefined || v === '' || v === '0') return false;
  if (v === '1') return true;
  throw new Error(`PRG_ORT_SPIN=${JSON.stringify(v)}: use 0 or 1`);
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

/** Test hook: pretend the CUDA provider is (not) installed. Returns the previous probe. */
let cudaProbe: () => boolean = cudaProviderInstalled;
export function setCudaProbe(probe: () => boolean): () => boolean {
  const prev = cudaProbe;
  cudaProbe = probe;
  return prev;
}

function ortOptions(
  o: ResolvedSessionOptions,
  providers: string[],
  enc: RuntimeEncoding,
): ort.InferenceSession.SessionOptions {
  const session: Record<string, unknown> = {
    intra_op: { allow_spinning: o.spin ? '1' : '0' },
  };
  // Weights loaded by reference: ORT reads them from their file (model-file.ts), found here.
  if (enc.files) session.model_external_initializers_file_folder_path = enc.files.folder;
  if (!o.prepack) session.disable_prepacking = '1';
  const so: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: o.threads,
    graphOptimizationLevel: o.optimization,
    enableCpuMemArena: o.cpuArena,
    enableMemPattern: o.memPattern,
    executionProviders: providers,
    // Session config entries (onnxruntime_session_options_config_keys.h).
    extra: { session },
  };
  if (o.profilePrefix !== null) {
    so.enableProfiling = true;
    so.profileFilePrefix = o.profilePrefix;
  }
  return so;
}

/**
 * Create an ORT session for `bytes` on the requested device. CUDA falls back to CPU (one warning
 * per process) when its provider is not installed or fails to load; any other error is thrown.
 */
async function createOrtSession(
  enc: RuntimeEncoding,
  o: ResolvedSessionOptions,
): Promise<{ session: ort.InferenceSession; device: Device }> {
  const bytes = enc.model;
  // Past 2 GiB the weights travel beside the model as external data (model-file.ts).
  const ext = enc.external
    ? { externalData: enc.external.map((e) => ({ path: e.location, data: e.data })) }
    : {};
  if (o.device === 'cuda') {
    if (!cudaProbe()) {
      warnCpuFallback('libonnxruntime_providers_cuda.so is not installed');
    } else {
      try {
        const session = await ort.InferenceSession.create(bytes, {
          ...ortOptions(o, executionProviders('cuda'), enc),
          ...ext,
        });
        return { session, device: 'cuda' };
      } catch (e) {
        warnCpuFallback(`ORT could not start it: ${(e as Error).message}`);
      }
    }
  }
  const session = await ort.InferenceSession.create(bytes, {
    ...ortOptions(o, ['cpu'], enc),
    ...ext,
  });
  return { session, device: 'cpu' };
}

export class GraphSession {
  private released = false;
  private static liveCount = 0;

  /**
   * ORT sessions created and not yet released in this thread: a run that gives back what it
   * opened leaves this where it found it (the fine-tune job spec checks that).
   */
  static get live(): number {
    return GraphSession.liveCount;
  }

  private constructor(
    readonly session: ort.InferenceSession,
    readonly graph: Graph,
    /** The device the session really runs on (cpu after a CUDA fallback). */
    readonly device: Device,
    readonly options: ResolvedSessionOptions,
  ) {}

  static async create(graph: Graph, opts: SessionOptions = {}): Promise<GraphSession> {
    return GraphSession.fromBytes(graph, encodeForRuntime(graph), resolveSessionOptions(opts));
  }

  /** Create from the already-encoded `graph` (the cache encodes once to hash and to load). */
  static async fromBytes(
    graph: Graph,
    enc: RuntimeEncoding,
    opts: ResolvedSessionOptions,
  ): Promise<GraphSession> {
    let created;
    try {
      created = await createOrtSession(enc, opts);
    } catch (e) {
      throw new Error(`graph ${graph.name}: ORT could not load it (${(e as Error).message})`, {
        cause: e,
      });
    }
    GraphSession.liveCount++;
    return new GraphSession(created.session, graph, created.device, opts);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Check feeds against the graph's inputs: every input present, right dtype, static dims. */
  checkFeeds(feeds: Feeds): void {
    const missing = this.session.inputNames.filter((n) => !(n in feeds));
    if (missing.length)
      throw new Error(`graph ${this.graph.name}: missing inputs ${missing.join(', ')}`);
    for (const info of this.graph.inputs) {
      const t = feeds[info.name];
      if (!t) continue;
      const badRank = t.dims.length !== info.shape.length;
      const badDim = info.shape.some((d, i) => typeof d === 'number' && d !== t.dims[i]);
      if (t.dtype !== info.dtype || badRank || badDim)
        throw new Error(
          `graph ${this.graph.name}: input ${info.name} is ${t.dtype}[${t.dims.join(',')}], ` +
            `the graph wants ${info.dtype}[${info.shape.join(',')}]`,
        );
    }
  }

  async run(feeds: Feeds, fetch?: string[]): Promise<Feeds> {
    if (this.released) throw new Error(`graph ${this.graph.name}: session already released`);
    this.checkFeeds(feeds);
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

  /** Stop ORT profiling (needs `profilePrefix`); ORT writes `<prefix>_<date>.json`. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  get isReleased(): boolean {
    return this.released;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    GraphSession.liveCount--;
    await this.session.release();
  }
}

function hashEncoding(enc: RuntimeEncoding) {
  const h = createHash('sha256').update(enc.model);
  for (const e of enc.external ?? []) h.update(e.data);
  // A file's content is named by its identity (inode, size, mtime): model files are replaced by
  // rename, never rewritten in place.
  for (const r of enc.files?.refs ?? []) h.update(`${r.path}:${r.offset}:${r.length}:${r.stamp}`);
  return h;
}

/** Cache key: sha256 over the encoded model (and its external data), then the options. */
export function sessionKey(enc: RuntimeEncoding, opts: ResolvedSessionOptions): string {
  return hashEncoding(enc).update(JSON.stringify(opts)).digest('hex');
}

/** A counted reference to a cached session; `release()` gives it back (idempotent). */
export interface SessionLease {
  readonly session: GraphSession;
  readonly key: string;
  release(): Promise<void>;
}

interface CacheEntry {
  pending: Promise<GraphSession>;
  refs: number;
}

/**
 * Sessions shared by graph content: two graphs that encode to the same bytes (with the same
 * options) get one ORT session. Reference-counted: the ORT session is released when the last
 * lease is given back, so memory follows use.
 */
export class SessionCache {
  private readonly entries = new Map<string, CacheEntry>();

  async acquire(graph: Graph, opts: SessionOptions = {}): Promise<SessionLease> {
    const resolved = resolveSessionOptions(opts);
    const bytes = encodeForRuntime(graph);
    const key = sessionKey(bytes, resolved);
    let entry = this.entries.get(key);
    if (!entry) {
      const e: CacheEntry = { pending: GraphSession.fromBytes(graph, bytes, resolved), refs: 0 };
      entry = e;
      this.entries.set(key, e);
      // A failed creation must not poison the key: drop it so the next acquire retries.
      e.pending.catch(() => {
        if (this.entries.get(key) === e) this.entries.delete(key);
      });
    }
    entry.refs++;
    let session: GraphSession;
    try {
      session = await entry.pending;
    } catch (err) {
      entry.refs--;
      throw err;
    }
    let done = false;
    const owner = entry;
    return {
      session,
      key,
      release: async () => {
        if (done) return;
        done = true;
        owner.refs--;
        if (owner.refs === 0 && this.entries.get(key) === owner) {
          this.entries.delete(key);
          await session.release();
        }
      },
    };
  }

  /** Number of live sessions. */
  get size(): number {
    return this.entries.size;
  }

  /** Reference count of a key (0 when absent). */
  refs(key: string): number {
    return this.entries.get(key)?.refs ?? 0;
  }

  /** Release every session regardless of leases (process shutdown). */
  async clear(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(
      all.map(async (e) => {
        try {
          await (await e.pending).release();
        } catch {
          // creation failed: nothing to release
        }
      }),
    );
  }
}

/** The process-wide cache. */
export const sessionCache = new SessionCache();

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
