import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../onnx/builder';
import { tensor } from '../onnx/types';
import { decodeCheckpoint, encodeCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint';
import { Ema } from './ema';
import { AdamW } from './optim';
import { ParamStore } from './params';
import { runGraph } from './session';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'prg-ckpt-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Parameters holding every awkward float32: NaN with a payload, ±0, ±Inf, subnormals. */
function awkwardParams(): ParamStore {
  const s = new ParamStore();
  const a = new Float32Array(7);
  new Uint32Array(a.buffer).set([0x7fc01234, 0x80000000, 0, 0x7f800000, 0xff800000, 1, 0x3f8ccccd]);
  s.set('layer.0.weight', [7], a);
  const b = new Float32Array(12);
  for (let i = 0; i < b.length; i++) b[i] = Math.sin(i * 1.7) * 1e-3;
  s.set('layer.0.bias', [3, 4], b);
  return s;
}
const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

describe('checkpoints', () => {
  it('save → load is bit-exact, with optimizer state, EMA and metadata', async () => {
    const params = awkwardParams();
    const opt = new AdamW({ weightDecay: 0.05 });
    const finite = new ParamStore();
    finite.set('layer.0.weight', [7], new Float32Array(7).fill(0.5));
    finite.set('layer.0.bias', [3, 4], new Float32Array(12).fill(-1));
    opt.step(
      finite,
      new Map([
        ['layer.0.weight', new Float32Array(7).fill(0.1)],
        ['layer.0.bias', new Float32Array(12).fill(0.2)],
      ]),
      1e-3,
    );
    const ema = new Ema(finite, { decay: 0.99 });
    ema.update(finite);
    const path = join(dir, 'a.onnx');
    await saveCheckpoint(path, {
      params,
      step: 1234,
      epoch: 7,
      optimizer: opt.state(),
      ema: { shadow: ema.shadow, updates: ema.updates },
      extra: { lr: 1e-3, note: 'x' },
    });
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const c = await loadCheckpoint(path);
    expect(c.step).toBe(1234);
    expect(c.epoch).toBe(7);
    expect(c.extra).toEqual({ lr: 1e-3, note: 'x' });
    expect(c.params.names()).toEqual(params.names());
    for (const p of params) {
      expect(c.params.get(p.name).dims).toEqual(p.dims);
      expect(bits(c.params.get(p.name).data)).toEqual(bits(p.data));
    }
    const st = opt.state();
    expect(c.optimizer?.kind).toBe('adamw');
    expect(c.optimizer?.step).toBe(1);
    expect(c.optimizer?.hyper).toEqual(st.hyper);
    expect([...c.optimizer!.slots.keys()].sort()).toEqual([...st.slots.keys()].sort());
    for (const [k, v] of st.slots) expect(bits(c.optimizer!.slots.get(k)!)).toEqual(bits(v));
    expect(c.ema?.updates).toBe(1);
    expect(bits(c.ema!.shadow.get('layer.0.bias').data)).toEqual(
      bits(ema.shadow.get('layer.0.bias').data),
    );
    // Resuming gives the same next step as never stopping.
    const resumed = new AdamW({ weightDecay: 0.05 });
    resumed.loadState(c.optimizer!);
    expect(resumed.stepCount).toBe(1);
  });

  it('a checkpoint of a graph is a runnable model with the saved weights', async () => {
    const b = new GraphBuilder('lin');
    const x = b.input('x', [1, 2]);
    const w = b.param('w', tensor('float32', [1, 2], [0, 0]));
    b.output(b.gemm(x, w, undefined, { transB: true }), 'y');
    const g = b.build();
    const params = ParamStore.fromGraph(g, ['w']);
    params.get('w').data.set([2, 3]);
    const path = join(dir, 'lin.onnx');
    await saveCheckpoint(path, { params, graph: g, step: 1 });
    const c = await loadCheckpoint(path);
    const y = await runGraph(c.graph, { x: tensor('float32', [1, 2], [1, 1]) }, { threads: 1 });
    expect(y.y.data[0]).toBe(5);
    expect(c.graph.metadata?.['prg.checkpoint']).toBeUndefined();
  });

  it('truncated or malformed files give a clear error', async () => {
    const bytes = encodeCheckpoint({ params: awkwardParams(), step: 3 });
    for (const cut of [0, 1, 10, bytes.length >> 2, bytes.length >> 1, bytes.length - 1]) {
      expect(() => decodeCheckpoint(bytes.subarray(0, cut), 'checkpoint t')).toThrow(
        /checkpoint t: (cannot be read|no prg.checkpoint metadata|content digest mismatch)/,
      );
    }
    const flipped = Uint8Array.from(bytes);
    // Flip a byte inside the first tensor's raw data (found by its known bit pattern).
    const at = Buffer.from(flipped).indexOf(Buffer.from([0x34, 0x12, 0xc0, 0x7f]));
    expect(at).toBeGreaterThan(0);
    flipped[at] ^= 0xff;
    expect(() => decodeCheckpoint(flipped, 'c')).toThrow(/digest mismatch; the file is corrupted/);
    const junk = join(dir, 'junk.onnx');
    await fs.writeFile(junk, Buffer.from('this is not an onnx file at all'));
    await expect(loadCheckpoint(junk)).rejects.toThrow(/checkpoint .*junk.onnx/);
    await expect(loadCheckpoint(join(dir, 'missing.onnx'))).rejects.toThrow(/cannot read/);
  });

  it('ParamStore.writeTo refuses a graph without the parameter', () => {
    const b = new GraphBuilder('other');
    b.output(b.relu(b.input('x', [1])), 'y');
    expect(() => awkwardParams().writeTo(b.build())).toThrow(
      /layer.0.weight is not an initializer of other/,
    );
  });
});
