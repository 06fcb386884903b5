import { describe, expect, it } from 'vitest';
import { runGraph } from '../../engine/runtime/session';
import { Graph, Tensor, tensor } from '../../engine/onnx/types';
import { buildDiT, buildUNet, buildVelocityNet, DIT_PRESETS, sincos2d } from '.';
import { tinyAttentionUNet } from './testing/tiny-unet';

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

function feeds(shape: [number, number, number, number], tv: number[], seed = 1) {
  const n = shape.reduce((a, c) => a * c, 1);
  return {
    x: tensor('float32', shape, randn(n, seed)),
    t: tensor('float32', [shape[0]], tv),
  };
}

async function velocity(g: Graph, f: Record<string, Tensor>): Promise<Float32Array> {
  const out = await runGraph(g, f, { threads: 1 });
  expect(out.v.dims).toEqual(f.x.dims);
  return out.v.data as Float32Array;
}

const allFinite = (a: Float32Array) => a.every((v) => Number.isFinite(v));
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('U-Net', () => {
  it('PRG-UNet-XS has the documented 620 705 parameters and the graph contract', () => {
    const net = buildVelocityNet({ kind: 'unet', preset: 'XS', inputShape: [1, 28, 28], seed: 0 });
    expect(net.params).toBe(620_705);
    const g = net.graph;
    expect(g.inputs.map((i) => [i.name, i.shape])).toEqual([
      ['x', ['N', 1, 28, 28]],
      ['t', ['N']],
    ]);
    expect(g.outputs).toEqual([{ name: 'v', dtype: 'float32', shape: ['N', 1, 28, 28] }]);
    // Every recorded parameter is a dotted initializer, and their sizes add up to `params`.
    let total = 0;
    for (const name of net.paramNames) {
      expect(name).toMatch(/^[a-z_]+(\.[a-z0-9_]+)+$/i);
      const t = g.initializers.get(name);
      expect(t, name).toBeDefined();
      total += t!.data.length;
    }
    expect(new Set(net.paramNames).size).toBe(net.paramNames.length);
    expect(total).toBe(net.params);
    expect(g.initializers.get('down.1.res.0.conv1.weight')?.dims).toEqual([64, 32, 3, 3]);
    expect(g.initializers.get('down.1.res.0.emb.weight')?.dims).toEqual([64, 128]);
    expect(g.initializers.get('up.0.res.0.skip.weight')?.dims).toEqual([32, 96, 1, 1]);
  });

  it('XS runs in ORT with batch 2; zero-init gives v = 0, default init depends on x and t', async () => {
    const f = feeds([2, 1, 28, 28], [0.1, 0.9]);
    const zero = buildVelocityNet({ kind: 'unet', preset: 'XS', inputShape: [1, 28, 28], seed: 0 });
    expect(maxAbs(await velocity(zero.graph, f))).toBe(0);

    const net = buildVelocityNet({
      kind: 'unet',
      preset: 'XS',
      inputShape: [1, 28, 28],
      batch: 2,
      seed: 0,
      overrides: { zeroInit: false },
    });
    expect(net.params).toBe(620_705);
    expect(net.graph.inputs[0].shape).toEqual([2, 1, 28, 28]);
    const v = await velocity(net.graph, f);
    expect(allFinite(v)).toBe(true);
    expect(maxAbs(v)).toBeGreaterThan(1e-3);
    const v2 = await velocity(net.graph, { ...f, t: tensor('float32', [2], [0.5, 0.9]) });
    const n = 28 * 28;
    // Sample 0's t changed → its output changes; sample 1 is untouched (no batch mixing).
    expect(maxAbs(v.slice(0, n).map((a, i) => a - v2[i]))).toBeGreaterThan(1e-5);
    expect(v.slice(n)).toEqual(v2.slice(n));
  });

  it('is seeded: same seed, same weights; another seed, other weights', () => {
    const w = (seed: number) =>
      buildVelocityNet({
        kind: 'unet',
        preset: 'XS',
        inputShape: [1, 28, 28],
        seed,
      }).graph.initializers.get('down.0.res.0.conv1.weight')!.data;
    expect(w(7)).toEqual(w(7));
    expect(w(7)).not.toEqual(w(8));
    const bound = 1 / Math.sqrt(32 * 9); // kaiming-uniform(a=√5) = U(±1/√fan_in)
    expect(maxAbs(w(7) as Float32Array)).toBeLessThanOrEqual(bound);
    expect(maxAbs(w(7) as Float32Array)).toBeGreaterThan(0.9 * bound);
  });

  it('attention U-Net (scale-shift, all skips, upsample conv) runs at 16×16 without batch mixing', async () => {
    const net = buildUNet(tinyAttentionUNet());
    const a = feeds([2, 3, 16, 16], [0.3, 0.7], 1);
    const b = feeds([2, 3, 16, 16], [0.3, 0.2], 2);
    const n = 3 * 16 * 16;
    (b.x.data as Float32Array).set((a.x.data as Float32Array).slice(0, n), 0); // same sample 0, different sample 1
    const va = await velocity(net.graph, a);
    const vb = await velocity(net.graph, b);
    expect(allFinite(va)).toBe(true);
    expect(maxAbs(va)).toBeGreaterThan(1e-3);
    for (let i = 0; i < n; i++) expect(va[i]).toBeCloseTo(vb[i], 5);
    expect(maxAbs(va.slice(n).map((x, i) => x - vb[n + i]))).toBeGreaterThan(1e-4);
  });

  it('handles odd sizes: 6 → 3 → 2 is upsampled ×2 and cropped back to the skip', async () => {
    const net = buildUNet(tinyAttentionUNet({ inputShape: [1, 6, 6], channelMult: [1, 1, 2] }));
    const v = await velocity(net.graph, feeds([2, 1, 6, 6], [0, 1]));
    expect(allFinite(v)).toBe(true);
  });

  it('rejects bad configs with a message naming the field', () => {
    expect(() => buildUNet(tinyAttentionUNet({ channelMult: [] }))).toThrow(/channelMult/);
    expect(() => buildUNet(tinyAttentionUNet({ timeEmbedDim: 7 }))).toThrow(/timeEmbedDim/);
    expect(() =>
      buildVelocityNet({ kind: 'unet', preset: 'XL', inputShape: [1, 8, 8], seed: 0 }),
    ).toThrow(/unknown unet preset XL/);
  });
});

describe('DiT', () => {
  const tiny = { ...DIT_PRESETS.XS, inputShape: [3, 8, 8] as [number, number, number] };

  it('runs at 8×8 with batch 2; zero-init gives v = 0', async () => {
    const f = feeds([2, 3, 8, 8], [0.2, 0.8]);
    const zero = buildDiT({ ...tiny, patchSize: 2, seed: 1 });
    expect(maxAbs(await velocity(zero.graph, f))).toBe(0);
    const net = buildDiT({ ...tiny, patchSize: 2, seed: 1, zeroInit: false, gelu: 'erf' });
    const v = await velocity(net.graph, f);
    expect(allFinite(v)).toBe(true);
    expect(maxAbs(v)).toBeGreaterThan(1e-3);
    // hidden 64, depth 4, patch 2, 3 channels, sinusoidal 64, no learned position embedding:
    const D = 64;
    const block =
      6 * D * D + 6 * D + (3 * D * D + 3 * D) + (D * D + D) + 2 * (4 * D * D) + 4 * D + D;
    const expected =
      D * 3 * 4 + D + (64 * D + D + D * D + D) + 4 * block + (2 * D * D + 2 * D) + (4 * 3 * D + 12);
    expect(net.params).toBe(expected);
  });

  it('unpatchify inverts patchify: with no blocks, a pixel only moves its own patch', async () => {
    const net = buildDiT({ ...tiny, patchSize: 2, depth: 0, zeroInit: false, seed: 2 });
    const f = feeds([1, 3, 8, 8], [0.5]);
    const base = await velocity(net.graph, f);
    const x2 = new Float32Array(f.x.data as Float32Array);
    const [c, i, j] = [1, 5, 2]; // pixel in patch row 2, patch column 1
    x2[c * 64 + i * 8 + j] += 1;
    const moved = await velocity(net.graph, { ...f, x: tensor('float32', [1, 3, 8, 8], x2) });
    for (let cc = 0; cc < 3; cc++)
      for (let ii = 0; ii < 8; ii++)
        for (let jj = 0; jj < 8; jj++) {
          const k = cc * 64 + ii * 8 + jj;
          const inPatch = Math.floor(ii / 2) === 2 && Math.floor(jj / 2) === 1;
          if (inPatch) expect(Math.abs(moved[k] - base[k])).toBeGreaterThan(1e-6);
          else expect(moved[k]).toBe(base[k]);
        }
  });

  it('learned positional embedding is a parameter started at 2-D sin-cos', () => {
    const net = buildDiT({ ...tiny, posEmbed: 'learned', seed: 0 });
    expect(net.paramNames).toContain('pos_embed');
    const pe = sincos2d(64, 2, 2);
    expect(Array.from(net.graph.initializers.get('pos_embed')!.data as Float32Array)).toEqual(
      Array.from(pe),
    );
    // position (row 0, col 1): first quarter is sin(1·ω_k), ω_0 = 1.
    expect(pe[64]).toBeCloseTo(Math.sin(1), 6);
    expect(pe[64 + 32]).toBe(0); // sin(row 0)
  });

  it('rejects a patch size that does not divide the image', () => {
    expect(() => buildDiT({ ...tiny, inputShape: [1, 28, 28], patchSize: 3 })).toThrow(
      /not a multiple of patchSize 3/,
    );
  });
});
