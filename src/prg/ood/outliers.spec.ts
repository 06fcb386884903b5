import { describe, expect, it } from 'vitest';
import { LabeledImages } from './data';
import { GUARD_SETS, OUTLIER_SETS, outlierSets } from './outliers';

/** Two 1×3×4 images with distinct pixel values on the 8-bit grid. */
function source(): LabeledImages {
  const D = 12;
  const data = Float32Array.from({ length: 2 * D }, (_, i) => (i * 10) / 127.5 - 1);
  return { data, n: 2, shape: [1, 3, 4], name: 'src' };
}

const onGrid = (v: number) => Math.abs((v + 1) * 127.5 - Math.round((v + 1) * 127.5)) < 1e-4;

describe('outlier sets', () => {
  it('have unique names, both roles, and the guard sets are validation noise/constant sets', () => {
    const names = OUTLIER_SETS.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(outlierSets('validation').length).toBeGreaterThan(2);
    expect(outlierSets('held-out').length).toBeGreaterThan(2);
    for (const g of GUARD_SETS) {
      const d = OUTLIER_SETS.find((s) => s.name === g)!;
      expect(d.role).toBe('validation');
      expect(['noise', 'constant']).toContain(d.kind);
    }
    // Selection and reporting share no generator.
    const val = new Set(outlierSets('validation').map((s) => s.name));
    expect(outlierSets('held-out').some((s) => val.has(s.name))).toBe(false);
  });

  it('are seeded, in [−1, 1], on the pixel grid, of the source shape', () => {
    for (const def of OUTLIER_SETS) {
      const a = def.make(source(), 2, 5);
      const b = def.make(source(), 2, 5);
      expect(a.shape, def.name).toEqual([1, 3, 4]);
      expect(a.data.length, def.name).toBe(a.n * 12);
      expect(Array.from(a.data), def.name).toEqual(Array.from(b.data));
      for (const v of a.data) {
        expect(v).toBeGreaterThanOrEqual(-1);
        expect(v).toBeLessThanOrEqual(1);
        expect(onGrid(v), `${def.name} ${v}`).toBe(true);
      }
    }
    const u1 = OUTLIER_SETS[0].make(source(), 2, 5).data;
    const u2 = OUTLIER_SETS[0].make(source(), 2, 6).data;
    expect(Array.from(u1)).not.toEqual(Array.from(u2));
  });

  it('transforms do what they say on a known image', () => {
    const src = source();
    const x = src.data.subarray(0, 12); // rows [0..3], [4..7], [8..11] ×10 levels
    const get = (name: string) => {
      const s = OUTLIER_SETS.find((d) => d.name === name)!.make(src, 2, 0);
      // subsets keep source order; find the image made from the first source image
      return s.data.subarray(0, 12);
    };
    const px = (img: ArrayLike<number>, i: number, j: number) => img[i * 4 + j];
    expect(
      Array.from(get('inverted'))
        .map((v, p) => v + x[p])
        .every((v) => Math.abs(v) < 1e-6),
    ).toBe(true);
    const vf = get('vflip');
    expect(px(vf, 0, 1)).toBeCloseTo(px(x, 2, 1), 6);
    const hf = get('hflip');
    expect(px(hf, 1, 0)).toBeCloseTo(px(x, 1, 3), 6);
    const sh = get('shift'); // by a quarter of the width: one column, black fill
    expect(px(sh, 2, 0)).toBe(-1);
    expect(px(sh, 2, 1)).toBeCloseTo(px(x, 2, 0), 6);
    const lc = get('low_contrast');
    expect(Math.max(...Array.from(lc).map(Math.abs))).toBeLessThanOrEqual(0.31);
    const c = OUTLIER_SETS.find((d) => d.name === 'constant_mid')!.make(src, 3, 1);
    for (let i = 0; i < 3; i++) expect(new Set(c.data.subarray(i * 12, (i + 1) * 12)).size).toBe(1);
  });
});
