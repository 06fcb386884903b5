import { describe, expect, it } from 'vitest';
import { Rng } from './rng';

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const sa = Array.from({ length: 8 }, () => a.u32());
    expect(Array.from({ length: 8 }, () => b.u32())).toEqual(sa);
    expect(Array.from({ length: 8 }, () => c.u32())).not.toEqual(sa);
    expect(new Rng('x').u32()).toBe(new Rng('x').u32());
  });

  it('gives uniforms in [0,1) with mean 1/2 and normals with mean 0, variance 1', () => {
    const r = new Rng(7);
    const n = 100_000;
    let su = 0;
    let s1 = 0;
    let s2 = 0;
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
      su += u;
      const z = r.normal();
      s1 += z;
      s2 += z * z;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    // Standard errors: 0.29/√n ≈ 9e-4 for the uniform mean, 1/√n ≈ 3e-3, √2/√n ≈ 4.5e-3.
    expect(Math.abs(su / n - 0.5)).toBeLessThan(5e-3);
    expect(Math.abs(s1 / n)).toBeLessThan(0.015);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.025);
  });

  it('int is in range and covers every value; permutation is a permutation', () => {
    const r = new Rng(9);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 7000; i++) counts[r.int(7)]++;
    for (const c of counts) expect(c).toBeGreaterThan(850);
    const p = r.permutation(100);
    expect([...p].sort((x, y) => x - y)).toEqual([...Array(100).keys()]);
    expect(() => r.int(0)).toThrow(/n must be/);
  });

  it('fork gives an independent, reproducible stream', () => {
    const f1 = new Rng(1).fork('aug');
    const f2 = new Rng(1).fork('aug');
    const f3 = new Rng(1).fork('noise');
    expect(f1.u32()).toBe(f2.u32());
    expect(f1.u32()).not.toBe(f3.u32());
  });
});
