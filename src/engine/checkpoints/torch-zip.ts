/**
 * PyTorch checkpoints as `torch.save` writes them since 1.6: a zip archive with one top-level
 * directory holding `data.pkl` (the pickled object), `data/<key>` (one record per storage, raw
 * little-endian bytes unless `byteorder` says "big"), `version`, and from 2.x `.data/version`
 * and `.data/serialization_id`.
 *
 * data.pkl goes through the restricted unpickler (pickle.ts) with only what a state_dict needs:
 * OrderedDict, the tensor and parameter rebuild functions, the typed storage classes (which give
 * the element type) and `_codecs.encode` (bytes under protocol 2). Storages are persistent ids
 * ('storage', StorageClass, key, location, numel); tensors that share a storage share one
 * TorchStorage, and views keep their offset and strides. A short list of plain data classes
 * (argparse.Namespace, numpy scalars, …) becomes Opaque placeholders; any other global is refused
 * with its name.
 */
import { Readable } from 'node:stream';
import * as yauzl from 'yauzl';
import { ITEM_SIZE, StoredDType, swapBytes } from './dtypes';
import { CheckpointError } from './errors';
import { Opaque, PickleError, PyCallable, opaqueClass, unpickle } from './pickle';
import { StoredTensor, gatherStrided, viewExtent } from './stored-tensor';

const STORAGE_DTYPES: Record<string, StoredDType> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** Data-only classes met in training checkpoints' extras: kept as Opaque, never built. */
const OPAQUE_GLOBALS = new Set([
  'argparse.Namespace',
  'numpy.core.multiarray.scalar',
  'numpy._core.multiarray.scalar',
  'numpy.core.multiarray._reconstruct',
  'numpy._core.multiarray._reconstruct',
  'numpy.dtype',
  'numpy.ndarray',
  'torch.torch_version.TorchVersion',
  'pathlib.PosixPath',
  'pathlib.WindowsPath',
  'builtins.set',
  'builtins.frozenset',
  'builtins.slice',
  'datetime.datetime',
  'datetime.date',
  'datetime.timedelta',
]);

/** Latest `version` record the reader knows (torch 1.6–2.x write 3). */
const MAX_ARCHIVE_VERSION = 3;

export class TorchStorage {
  constructor(
    readonly key: string,
    readonly dtype: StoredDType,
    readonly numel: number,
    private readonly load: () => Promise<Uint8Array>,
  ) {}
  bytes(): Promise<Uint8Array> {
    return this.load();
  }
}

/** A tensor of a torch archive: a view (offset, shape, strides) into a storage. */
export class TorchTensor implements StoredTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
  ) {}
  get dtype(): StoredDType {
    return this.storage.dtype;
  }
  async toFloat32(): Promise<Float32Array> {
    return gatherStrided(
      this.dtype,
      await this.storage.bytes(),
      this.offset,
      this.shape,
      this.stride,
    );
  }
}

export interface TorchArchive {
  path: string;
  /** What `torch.load` would return, as plain JS values (pickle.ts) with TorchTensor leaves. */
  root: unknown;
  /** Archive `version` record. */
  version: number;
  byteorder: 'little' | 'big';
  close(): Promise<void>;
}

function intList(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && (x as number) >= 0))
    throw new PickleError(`${what} must be a tuple of non-negative integers, got ${String(v)}`);
  return v as number[];
}

/** The torch globals a state_dict pickle may name, as data-building functions. */
function torchGlobals(): (module: string, name: string) => PyCallable | undefined {
  const fn = (pyName: string, call: (args: unknown[]) => unknown): PyCallable => ({
    pyName,
    call,
  });
  const rebuildTensor = (args: unknown[], pyName: string): TorchTensor => {
    const [storage, offset, size, stride, requiresGrad] = args;
    if (!(storage instanceof TorchStorage))
      throw new PickleError(`${pyName}: first argument is not a storage`);
    if (!Number.isInteger(offset) || (offset as number) < 0)
      throw new PickleError(`${pyName}: bad storage offset ${String(offset)}`);
    const shape = intList(size, `${pyName} size`);
    const strides = intList(stride, `${pyName} stride`);
    if (shape.length !== strides.length)
      throw new PickleError(`${pyName}: size [${shape}] and stride [${strides}] differ in rank`);
    const end = viewExtent(offset as number, shape, strides);
    if (end > storage.numel)
      throw new PickleError(
        `tensor [${shape}] at offset ${String(offset)} with strides [${strides}] reaches element ` +
          `${end} of storage ${storage.key}, which has ${storage.numel}`,
      );
    return new TorchTensor(storage, offset as number, shape, strides, requiresGrad === true);
  };
  const table: Record<string, PyCallable> = {
    'collections.OrderedDict': fn('collections.OrderedDict', (args) => {
      const m = new Map<unknown, unknown>();
      if (Array.isArray(args[0]))
        for (const kv of args[0] as unknown[][]) if (Array.isArray(kv)) m.set(kv[0], kv[1]);
      return m;
    }),
    'torch._utils._rebuild_tensor_v2': fn('torch._utils._rebuild_tensor_v2', (a) =>
      rebuildTensor(a, '_rebuild_tensor_v2'),
    ),
    'torch._utils._rebuild_tensor': fn('torch._utils._rebuild_tensor', (a) =>
      rebuildTensor([...a, false], '_rebuild_tensor'),
    ),
    'torch._utils._rebuild_parameter': fn('torch._utils._rebuild_parameter', (a) => a[0]),
    'torch._utils._rebuild_parameter_with_state': fn(
      'torch._utils._rebuild_parameter_with_state',
      (a) => a[0],
    ),
    'torch._tensor._rebuild_from_type_v2': fn('torch._tensor._rebuild_from_type_v2', (a) => {
      const [f, , args] = a;
      if (!f || typeof (f as PyCallable).call !== 'function' || !Array.isArray(args))
        throw new PickleError('_rebuild_from_type_v2: malformed arguments');
      return (f as PyCallable).call(args as unknown[]);
    }),
    'torch.Tensor': fn('torch.Tensor', () => new Opaque('torch.Tensor', [])),
    'torch.nn.parameter.Parameter': fn('torch.nn.parameter.Parameter', (a) => a[0]),
    'torch.device': fn('torch.device', (a) => `device(${a.map(String).join(', ')})`),
    '_codecs.encode': fn('_codecs.encode', (a) => {
      // Protocol 2 writes bytes as _codecs.encode(str, 'latin1'): decode that string, nothing more.
      if (typeof a[0] !== 'string') throw new PickleError('_codecs.encode of a non-string');
      return Uint8Array.from(a[0], (c) => c.charCodeAt(0) & 0xff);
    }),
  };
  return (module, name) => {
    const key = `${module}.${name}`;
    if (table[key]) return table[key];
    // Storage classes only name the element type inside persistent ids; never instantiated.
    if (module === 'torch' && STORAGE_DTYPES[name])
      return fn(key, () => {
        throw new PickleError(`${key} called: storages come only from persistent ids`);
      });
    if (module === 'torch' && /^(float|bfloat|int|uint|bool|complex)\d*$/.test(name))
      return fn(key, () => key); // dtype objects (optimizer extras)
    if (OPAQUE_GLOBALS.has(key)) return opaqueClass(key);
    return undefined;
  };
}

async function readStream(s: Readable, limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of s as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new Error(`more than the expected ${limit} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks, n);
}

async function openZip(path: string): Promise<yauzl.ZipFile> {
  try {
    return await yauzl.openPromise(path, { lazyEntries: true, autoClose: false });
  } catch (e) {
    throw new CheckpointError(
      path,
      `not a readable zip archive (truncated or corrupt?): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

export async function openTorchArchive(path: string): Promise<TorchArchive> {
  const zip = await openZip(path);
  const fail = (problem: string, cause?: unknown): never => {
    throw new CheckpointError(path, problem, { cause });
  };
  try {
    const entries = new Map<string, yauzl.Entry>();
    try {
      for await (const e of zip.eachEntry()) entries.set(e.fileName, e);
    } catch (e) {
      fail(`corrupt zip directory: ${(e as Error).message}`, e);
    }
    const pkl = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    const names = [...entries.keys()];
    if (names.some((n) => /^[^/]+\/constants\.pkl$/.test(n) || /^[^/]+\/code\//.test(n)))
      fail(
        'a TorchScript archive (torch.jit.save), not a state_dict; in Python, load it with ' +
          'torch.jit.load and save model.state_dict() with torch.save',
      );
    if (pkl.length !== 1)
      fail(
        pkl.length
          ? `${pkl.length} data.pkl records (${pkl.join(', ')}); expected one`
          : 'zip archive without <name>/data.pkl: not a PyTorch checkpoint',
      );
    const prefix = pkl[0].slice(0, -'data.pkl'.length);
    const read = async (name: string, limit: number): Promise<Uint8Array> => {
      const e = entries.get(name);
      if (!e) return fail(`missing record ${name}`);
      if (e.uncompressedSize > limit)
        fail(`record ${name} has ${e.uncompressedSize} bytes, expected at most ${limit}`);
      try {
        return await readStream(await zip.openReadStreamPromise(e), limit);
      } catch (err) {
        return fail(`record ${name} unreadable (truncated file?): ${(err as Error).message}`, err);
      }
    };
    const text = async (name: string): Promise<string | undefined> =>
      entries.has(prefix + name)
        ? new TextDecoder().decode(await read(prefix + name, 1024)).trim()
        : undefined;

    const versionText = await text('version');
    const version = versionText === undefined ? 1 : Number(versionText);
    if (!Number.isInteger(version) || version < 1 || version > MAX_ARCHIVE_VERSION)
      fail(`archive version ${JSON.stringify(versionText)} (this reader knows 1–3)`);
    const order = (await text('byteorder')) ?? 'little';
    if (order !== 'little' && order !== 'big') fail(`byteorder record says ${order}`);
    const byteorder = order as 'little' | 'big';

    const storages = new Map<string, TorchStorage>();
    const persistentLoad = (pid: unknown): TorchStorage => {
      if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5)
        throw new PickleError(`persistent id ${JSON.stringify(pid)} is not a storage`);
      const [, cls, key, , numel] = pid as [string, unknown, unknown, unknown, unknown];
      const clsName =
        typeof cls === 'object' && cls !== null && 'pyName' in cls
          ? (cls as PyCallable).pyName.replace(/^torch\./, '')
          : '';
      const dtype = STORAGE_DTYPES[clsName];
      if (!dtype) throw new PickleError(`storage of unknown type ${String(clsName || cls)}`);
      if (typeof key !== 'string' || !/^\w+$/.test(key))
        throw new PickleError(`storage key ${JSON.stringify(key)}`);
      if (!Number.isInteger(numel) || (numel as number) < 0)
        throw new PickleError(`storage ${key}: element count ${String(numel)}`);
      const known = storages.get(key);
      if (known) return known;
      const record = `${prefix}data/${key}`;
      const e = entries.get(record);
      if (!e) throw new PickleError(`storage ${key} has no record ${record}`);
      const nbytes = (numel as number) * ITEM_SIZE[dtype];
      if (e.uncompressedSize < nbytes)
        throw new PickleError(
          `record ${record} has ${e.uncompressedSize} bytes, storage ${key} needs ${nbytes}`,
        );
      const s = new TorchStorage(key, dtype, numel as number, async () => {
        const bytes = (await read(record, e.uncompressedSize)).subarray(0, nbytes);
        if (byteorder === 'big') swapBytes(bytes, ITEM_SIZE[dtype]);
        return bytes;
      });
      storages.set(key, s);
      return s;
    };

    const pklBytes = await read(pkl[0], 2 ** 30);
    let root: unknown;
    try {
      root = unpickle(pklBytes, {
        resolveGlobal: torchGlobals(),
        persistentLoad,
        // OrderedDict state (state_dict's `_metadata` attribute) carries module versions only.
        build: (obj) => obj instanceof Map,
      });
    } catch (e) {
      if (e instanceof PickleError) fail(`${pkl[0]}: ${e.message}`, e);
      throw e;
    }
    return { path, root, version, byteorder, close: async () => zip.close() };
  } catch (e) {
    zip.close();
    throw e;
  }
}
