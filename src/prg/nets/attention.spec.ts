import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../engine/onnx/builder';
import { tensor } from '../../engine/onnx/types';
import { runGraph } from '../../engine/runtime/session';
import { Params } from './layers';
import { attentionBlock2d } from './unet';

/**
 * improved-diffusion's AttentionBlock written out in loops (PyTorch semantics and weight layouts),
 * to pin the head/channel order of the graph version: per head, 3·d consecutive qkv channels are
 * [q | k | v]; weights softmax(qᵀk/√d) over keys; output channel h·d + i.
 */
function reference(
  x: Float32Array,
  [n, c, L]: [number, number, number],
  heads: number,
  groups: number,
  w: Record<string, Float32Array>,
): Float32Array {
  const d = c / heads;
  const y = new Float32Array(x.length);
  for (let s = 0; s < n; s++) {
    const xs = (ch: number, l: number) => x[(s * c + ch) * L + l];
    const gn: number[][] = [];
    const per = c / groups;
    for (let g = 0; g < groups; g++) {
      const vals: number[] = [];
      for (let ch = g * per; ch < (g + 1) * per; ch++)
        for (let l = 0; l < L; l++) vals.push(xs(ch, l));
      const mean = vals.reduce((a, v) => a + v, 0) / vals.length;
      const vr = vals.reduce((a, v) => a + (v - mean) ** 2, 0) / vals.length;
      for (let ch = g * per; ch < (g + 1) * per; ch++)
        gn[ch] = Array.from(
          { length: L },
          (_, l) => ((xs(ch, l) - mean) / Math.sqrt(vr + 1e-5)) * w.gw[ch] + w.gb[ch],
        );
    }
    const qkv = Array.from({ length: 3 * c }, (_, o) =>
      Array.from({ length: L }, (_, l) => {
        let acc = w.qb[o];
        for (let ch = 0; ch < c; ch++) acc += w.qw[o * c + ch] * gn[ch][l];
        return acc;
      }),
    );
    const a: number[][] = Array.from({ length: c }, () => new Array<number>(L).fill(0));
    for (let h = 0; h < heads; h++) {
      const q = (i: number, l: number) => qkv[h * 3 * d + i][l];
      const k = (i: number, l: number) => qkv[h * 3 * d + d + i][l];
      const v = (i: number, l: number) => qkv[h * 3 * d + 2 * d + i][l];
      for (let t = 0; t < L; t++) {
        const sc = Array.from({ length: L }, (_, u) => {
          let acc = 0;
          for (let i = 0; i < d; i++) acc += q(i, t) * k(i, u);
          return acc / Math.sqrt(d);
        });
        const m = Math.max(...sc);
        const e = sc.map((z) => Math.exp(z - m));
        const z = e.reduce((acc, v2) => acc + v2, 0);
        for (let i = 0; i < d; i++)
          a[h * d + i][t] = e.reduce((acc, ej, u) => acc + (ej / z) * v(i, u), 0);
      }
    }
    for (let ch = 0; ch < c; ch++)
      for (let l = 0; l < L; l++) {
        let acc = w.pb[ch];
        for (let cc = 0; cc < c; cc++) acc += w.pw[ch * c + cc] * a[cc][l];
        y[(s * c + ch) * L + l] = xs(ch, l) + acc;
      }
  }
  return y;
}

describe('U-Net attention block', () => {
  it('matches a loop implementation of improved-diffusion AttentionBlock', async () => {
    const [n, c, hh, ww, heads, groups] = [2, 8, 2, 3, 2, 2];
    const b = new GraphBuilder('attn');
    const p = new Params(b, 11);
    const x = b.input('x', ['N', c, hh, ww]);
    b.output(attentionBlock2d(p, 'a', x, { heads, groups, zeroProj: false }), 'y');
    const g = b.build();
    // Non-trivial norm affine so a swapped weight/bias would show.
    const gw = Float32Array.from({ length: c }, (_, i) => 1 + 0.1 * i);
    const gb = Float32Array.from({ length: c }, (_, i) => 0.05 * i - 0.2);
    g.initializers.set('a.norm.weight', tensor('float32', [c], gw));
    g.initializers.set('a.norm.bias', tensor('float32', [c], gb));
    const xd = Float32Array.from({ length: n * c * hh * ww }, (_, i) => Math.sin(1.3 * i) * 2);
    const out = await runGraph(g, { x: tensor('float32', [n, c, hh, ww], xd) });
    const init = (k: string) => g.initializers.get(k)!.data as Float32Array;
    const ref = reference(xd, [n, c, hh * ww], heads, groups, {
      gw,
      gb,
      qw: init('a.qkv.weight'),
      qb: init('a.qkv.bias'),
      pw: init('a.proj.weight'),
      pb: init('a.proj.bias'),
    });
    const got = out.y.data as Float32Array;
    // float32 vs float64 over sums of ≤ 8 terms of magnitude ~1: agreement to ~1e-5.
    ref.forEach((r, i) => expect(got[i]).toBeCloseTo(r, 4));
  });
});
