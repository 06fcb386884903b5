import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as yazl from 'yazl';
import {
  CheckpointError,
  Opaque,
  StoredTensor,
  TorchTensor,
  encodeSafetensors,
  openCheckpoint,
  unpickle,
} from './index';

const FIX = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'import');
let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'prg-ckpt-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const get = (m: unknown, k: unknown): unknown => {
  if (!(m instanceof Map)) throw new Error(`not a dict: ${String(m)}`);
  return m.get(k);
};

// ---- a tiny pickle writer for hand-made archives (protocol 2 opcodes) ------------------------

const enc = new TextEncoder();
type Op = number[] | string;
const op = {
  proto: [0x80, 2],
  global: (m: string, n: string) => `c${m}\n${n}\n`,
  str: (s: string) => {
    const b = enc.encode(s);
    return [0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b];
  },
  int: (n: number) => [0x4a, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff],
  mark: [0x28],
  tuple: [0x74],
  emptyTuple: [0x29],
  reduce: [0x52],
  setitems: [0x75],
  persid: [0x51],
  false: [0x89],
  stop: [0x2e],
};
function pickleBytes(...ops: Op[]): Uint8Array {
  const out: number[] = [];
  for (const o of ops) out.push(...(typeof o === 'string' ? enc.encode(o) : o));
  return Uint8Array.from(out);
}
/** OrderedDict {'w': tensor(size, stride, offset) over storage '0' of `numel` floats}. */
function stateDictPickle(o: { numel: number; size: number[]; stride: number[]; offset: number }) {
  const tup = (xs: number[]) => [op.mark, ...xs.map(op.int), op.tuple];
  return pickleBytes(
    op.proto,
    op.global('collections', 'OrderedDict'),
    op.emptyTuple,
    op.reduce,
    op.mark,
    op.str('w'),
    op.global('torch._utils', '_rebuild_tensor_v2'),
    op.mark,
    op.mark,
    op.str('storage'),
    op.global('torch', 'FloatStorage'),
    op.str('0'),
    op.str('cpu'),
    op.int(o.numel),
    op.tuple,
    op.persid,
    op.int(o.offset),
    ...tup(o.size),
    ...tup(o.stride),
    op.false,
    op.global('collections', 'OrderedDict'),
    op.emptyTuple,
    op.reduce,
    op.tuple,
    op.reduce,
    op.setitems,
    op.stop,
  );
}

async function zipFile(name: string, records: Record<string, Uint8Array | string>) {
  const z = new yazl.ZipFile();
  for (const [k, v] of Object.entries(records))
    z.addBuffer(Buffer.from(typeof v === 'string' ? enc.encode(v) : v), k, { compress: false });
  z.end();
  const chunks: Buffer[] = [];
  for await (const c of z.outputStream as AsyncIterable<Buffer>) chunks.push(c);
  const path = join(dir, name);
  await fs.writeFile(path, Buffer.concat(chunks));
  return path;
}

function floatBytes(values: number[], bigEndian = false): Uint8Array {
  const b = new Uint8Array(4 * values.length);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setFloat32(4 * i, v, !bigEndian));
  return b;
}

async function expectError(path: string, pattern: RegExp) {
  const err = await openCheckpoint(path).then(
    async (f) => {
      await f.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  expect((err as CheckpointError).file).toBe(path);
  expect((err as Error).message).toMatch(pattern);
}

// ---- files written by real PyTorch ---------------------------------------------------------

describe.each(['torch1', 'torch2'])('PyTorch archive written by %s', (tag) => {
  it('reads every dtype, view, stride and shared storage as torch.load does', async () => {
    const expected = JSON.parse(await fs.readFile(join(FIX, `reader.${tag}.json`), 'utf8')) as {
      tensors: Record<string, { shape: number[]; values: number[] }>;
    };
    const f = await openCheckpoint(join(FIX, `reader.${tag}.pt`));
    try {
      expect(f.format).toBe('torch-zip');
      const state = get(f.root, 'state');
      for (const [k, e] of Object.entries(expected.tensors)) {
        const t = get(state, k) as StoredTensor;
        expect(t.shape, k).toEqual(e.shape);
        // Exact: every conversion (f16, bf16, f64 → f32) is exact or rounds as torch's .float().
        expect(Array.from(await t.toFloat32()), k).toEqual(Array.from(Float32Array.from(e.values)));
      }
      const f32 = get(state, 'f32') as TorchTensor;
      expect((get(state, 'transposed') as TorchTensor).storage).toBe(f32.storage);
      expect((get(state, 'row_view') as TorchTensor).offset).toBe(6);
      expect((get(state, 'strided') as TorchTensor).stride).toEqual([6, 2]);
      expect((get(state, 'f16') as StoredTensor).dtype).toBe('float16');
      expect((get(state, 'bf16') as StoredTensor).dtype).toBe('bfloat16');
      expect(get(get(f.root, 'shared_again'), 'f32')).toBe(f32);
      const args = get(f.root, 'args');
      expect(args).toBeInstanceOf(Opaque);
      expect((args as Opaque).pyClass).toBe('argparse.Namespace');
      expect(get((args as Opaque).state, 'lr')).toBe(0.1);
      expect(get(f.root, 'step')).toBe(7);
      expect(get(f.root, 'nested')).toEqual([
        1,
        [2.5, 'a'],
        new Map<unknown, unknown>([
          ['k', null],
          [3, true],
        ]),
      ]);
      expect(Array.from(get(f.root, 'blob') as Uint8Array)).toEqual([0, 1, 255]);
    } finally {
      await f.close();
    }
  });

  it('refuses TorchScript and legacy files, saying what to do', async () => {
    await expectError(join(FIX, `torchscript.${tag}.pt`), /TorchScript archive.*state_dict/);
    await expectError(join(FIX, `legacy.${tag}.pt`), /legacy PyTorch serialization.*re-save/);
  });
});

it('reads a training-script checkpoint {model, ema, opt, args} with optimizer state', async () => {
  const f = await openCheckpoint(join(FIX, 'sit-tiny.torch1.pt'));
  try {
    const ema = get(f.root, 'ema') as Map<string, StoredTensor>;
    expect(ema.get('x_embedder.proj.weight')?.shape).toEqual([32, 4, 2, 2]);
    const opt = get(f.root, 'opt');
    expect(get(opt, 'state')).toBeInstanceOf(Map);
    expect((get(f.root, 'args') as Opaque).pyClass).toBe('argparse.Namespace');
  } finally {
    await f.close();
  }
});

it('reads safetensors, and its values equal the PyTorch file they came from', async () => {
  const st = await openCheckpoint(join(FIX, 'sit-tiny.safetensors'));
  const pt = await openCheckpoint(join(FIX, 'sit-tiny.torch2.pt'));
  try {
    expect(st.format).toBe('safetensors');
    const a = st.root as Map<string, StoredTensor>;
    const b = pt.root as Map<string, StoredTensor>;
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [k, t] of a) {
      expect(b.get(k)?.dtype).toBe('bfloat16');
      expect(await t.toFloat32(), k).toEqual(await b.get(k)?.toFloat32());
    }
  } finally {
    await st.close();
    await pt.close();
  }
});

// ---- hand-made archives --------------------------------------------------------------------

describe('hand-made PyTorch archives', () => {
  const base = { numel: 6, size: [2, 3], stride: [3, 1], offset: 0 };

  it('reads a minimal archive, and byte-swaps a big-endian one', async () => {
    const vals = [1.5, -2, 3.25, 4, 5, -6.5];
    for (const big of [false, true]) {
      const p = await zipFile(`min-${big}.pt`, {
        'a/data.pkl': stateDictPickle(base),
        'a/data/0': floatBytes(vals, big),
        'a/version': '3\n',
        'a/byteorder': big ? 'big' : 'little',
      });
      const f = await openCheckpoint(p);
      const w = get(f.root, 'w') as StoredTensor;
      expect(Array.from(await w.toFloat32())).toEqual(vals);
      await f.close();
    }
  });

  it('honours non-contiguous strides and offsets', async () => {
    const p = await zipFile('strided.pt', {
      'a/data.pkl': stateDictPickle({ numel: 6, size: [3, 2], stride: [1, 3], offset: 0 }),
      'a/data/0': floatBytes([0, 1, 2, 3, 4, 5]),
    });
    const f = await openCheckpoint(p);
    expect(Array.from(await (get(f.root, 'w') as StoredTensor).toFloat32())).toEqual([
      0, 3, 1, 4, 2, 5,
    ]);
    await f.close();
  });

  it('rejects a view past the end of its storage', async () => {
    const p = await zipFile('past-end.pt', {
      'a/data.pkl': stateDictPickle({ ...base, offset: 1 }),
      'a/data/0': floatBytes([0, 1, 2, 3, 4, 5]),
    });
    await expectError(p, /reaches element 7 of storage 0, which has 6/);
  });

  it('rejects a storage record shorter than its element count', async () => {
    const p = await zipFile('short.pt', {
      'a/data.pkl': stateDictPickle(base),
      'a/data/0': floatBytes([0, 1, 2]),
    });
    await expectError(p, /record a\/data\/0 has 12 bytes, storage 0 needs 24/);
  });

  it('rejects a missing storage record', async () => {
    const p = await zipFile('nostorage.pt', { 'a/data.pkl': stateDictPickle(base) });
    await expectError(p, /storage 0 has no record a\/data\/0/);
  });

  it('rejects globals outside the state_dict allow-list, executing nothing', async () => {
    const evil = pickleBytes(
      op.proto,
      op.global('os', 'system'),
      op.mark,
      op.str('touch /tmp/prg-pwned'),
      op.tuple,
      op.reduce,
      op.stop,
    );
    const p = await zipFile('evil.pt', { 'a/data.pkl': evil });
    await expectError(p, /global os\.system is not allowed/);
    await expect(fs.stat('/tmp/prg-pwned')).rejects.toThrow();
  });

  it('rejects a truncated data.pkl and an unknown opcode, naming the byte', async () => {
    const full = stateDictPickle(base);
    const p1 = await zipFile('trunc-pkl.pt', {
      'a/data.pkl': full.subarray(0, 40),
      'a/data/0': floatBytes([0, 1, 2, 3, 4, 5]),
    });
    await expectError(p1, /a\/data\.pkl: pickle byte \d+: truncated/);
    const p2 = await zipFile('badop.pt', { 'a/data.pkl': Uint8Array.from([0x80, 2, 0xff, 0x2e]) });
    await expectError(p2, /unsupported opcode 0xff/);
  });

  it('rejects a truncated archive, a zip without data.pkl, a future version', async () => {
    const real = await fs.readFile(join(FIX, 'reader.torch2.pt'));
    const trunc = join(dir, 'trunc.pt');
    await fs.writeFile(trunc, real.subarray(0, Math.floor(real.length / 2)));
    await expectError(trunc, /not a readable zip archive \(truncated or corrupt\?\)/);
    await expectError(await zipFile('nopkl.pt', { 'a/x.txt': 'hi' }), /without <name>\/data\.pkl/);
    await expectError(
      await zipFile('future.pt', { 'a/data.pkl': stateDictPickle(base), 'a/version': '9\n' }),
      /archive version "9"/,
    );
  });

  it('rejects empty, unknown and bare-pickle files', async () => {
    const empty = join(dir, 'empty.pt');
    await fs.writeFile(empty, '');
    await expectError(empty, /empty file/);
    const junk = join(dir, 'junk.bin');
    await fs.writeFile(junk, 'hello world, not a checkpoint');
    await expectError(junk, /unknown format/);
    const bare = join(dir, 'bare.pkl');
    await fs.writeFile(bare, stateDictPickle(base));
    await expectError(bare, /bare pickle/);
  });
});

describe('hand-made safetensors', () => {
  const good = () =>
    encodeSafetensors(new Map([['a', { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }]]));
  const withHeader = async (name: string, header: unknown, payload = 16) => {
    const h = enc.encode(JSON.stringify(header));
    const b = new Uint8Array(8 + h.length + payload);
    new DataView(b.buffer).setBigUint64(0, BigInt(h.length), true);
    b.set(h, 8);
    const p = join(dir, name);
    await fs.writeFile(p, b);
    return p;
  };

  it('round-trips what encodeSafetensors writes', async () => {
    const p = join(dir, 'good.safetensors');
    await fs.writeFile(p, good());
    const f = await openCheckpoint(p);
    expect(Array.from(await (get(f.root, 'a') as StoredTensor).toFloat32())).toEqual([1, 2, 3, 4]);
    await f.close();
  });

  it('rejects a truncated file, a header past the end, bad JSON, sizes and dtypes', async () => {
    const g = good();
    const trunc = join(dir, 'trunc.safetensors');
    await fs.writeFile(trunc, g.subarray(0, g.length - 4));
    await expectError(trunc, /tensor a ends at byte 16 of a 12-byte payload \(truncated file\?\)/);
    const huge = join(dir, 'huge.safetensors');
    const hb = g.slice();
    new DataView(hb.buffer).setBigUint64(0, 1n << 40n, true);
    await fs.writeFile(huge, hb);
    await expectError(huge, /header length 1099511627776 exceeds the file/);
    const badJson = join(dir, 'badjson.safetensors');
    const bj = g.slice();
    bj[9] = 0x3a; // ':' right after '{'
    await fs.writeFile(badJson, bj);
    await expectError(badJson, /not valid JSON/);
    await expectError(
      await withHeader('size.safetensors', {
        a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] },
      }),
      /16 bytes for float32\[3\], needs 12/,
    );
    await expectError(
      await withHeader('dtype.safetensors', {
        a: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] },
      }),
      /dtype "F8_E4M3"/,
    );
    await expectError(
      await withHeader('shape.safetensors', {
        a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] },
      }),
      /shape \[-1\]/,
    );
  });
});

describe('unpickle', () => {
  it('keeps memo references and reads protocol-0 ints and floats', () => {
    const v = unpickle(pickleBytes('(I01\nI42\nF0.5\nL123L\ntp0\ng0\n', [0x86, 0x2e]), {
      resolveGlobal: () => undefined,
    }) as unknown[][];
    expect(v[0]).toEqual([true, 42, 0.5, 123]);
    expect(v[1]).toBe(v[0]);
  });
});
