import { describe, expect, it } from 'vitest';
import { Rng } from '../rng';
import { otAssignment, otPairNoise, permuteRows, solveAssignment, sqEuclideanCost } from './index';

/** Minimum assignment cost by enumerating all n! permutations (Heap's algorithm). */
function bruteForce(cost: ArrayLike<number>, n: number): number {
  const p = Array.from({ length: n }, (_, i) => i);
  const c = new Array(n).fill(0);
  const score = () => p.reduce((s, j, i) => s + cost[i * n + j], 0);
  let best = score();
  let i = 0;
  while (i < n) {
    if (c[i] < i) {
      const k = i % 2 === 0 ? 0 : c[i];
      [p[k], p[i]] = [p[i], p[k]];
      best = Math.min(best, score());
      c[i]++;
      i = 0;
    } else {
      c[i] = 0;
      i++;
    }
  }
  return best;
}

function isPermutation(p: Int32Array): boolean {
  const seen = new Set(p);
  return seen.size === p.length && [...p].every((j) => j >= 0 && j < p.length);
}

describe('solveAssignment', () => {
  it('matches brute force on random costs, n = 1..7', () => {
    const rng = new Rng(1);
    for (let n = 1; n <= 7; n++) {
      for (let trial = 0; trial < 20; trial++) {
        const cost = new Float64Array(n * n).map(() => rng.normal() * 10);
        const a = solveAssignment(cost, n);
        expect(isPermutation(a.rowToCol)).toBe(true);
        for (let i = 0; i < n; i++) expect(a.colToRow[a.rowToCol[i]]).toBe(i);
        const direct = [...a.rowToCol].reduce((s, j, i) => s + cost[i * n + j], 0);
        expect(a.cost).toBeCloseTo(direct, 9);
        expect(a.cost).toBeCloseTo(bruteForce(cost, n), 9);
      }
    }
  });

  it('matches brute force with many ties (small integer costs, constant rows/columns)', () => {
    const rng = new Rng(2);
    for (let n = 2; n <= 7; n++) {
      for (let trial = 0; trial < 20; trial++) {
        const cost = new Float64Array(n * n).map(() => rng.int(3));
        expect(solveAssignment(cost, n).cost).toBe(bruteForce(cost, n));
      }
      const constant = new Float64Array(n * n).fill(5);
      expect(solveAssignment(constant, n).cost).toBe(5 * n);
      // Rank-one costs c[i,j] = r[i] + s[j]: every permutation is optimal.
      const rank1 = new Float64Array(n * n).map((_, k) => Math.floor(k / n) + 10 * (k % n));
      expect(solveAssignment(rank1, n).cost).toBe(bruteForce(rank1, n));
    }
  });

  it('finds the identity on a cost that penalises every other pairing', () => {
    const n = 50;
    const cost = new Float64Array(n * n).map((_, k) => (Math.floor(k / n) === k % n ? 0 : 1));
    expect([...solveAssignment(cost, n).rowToCol]).toEqual([...Array(n).keys()]);
  });

  it('rejects bad input', () => {
    expect(() => solveAssignment([1, 2, 3], 2)).toThrow(/3 costs for a 2×2/);
    expect(() => solveAssignment([1, NaN, 3, 4], 2)).toThrow(/cost\[0, 1\] is NaN/);
  });
});

describe('sqEuclideanCost', () => {
  it('equals the direct ‖a − b‖² for every block remainder', () => {
    const rng = new Rng(3);
    for (const [n, m, d] of [
      [1, 1, 1],
      [5, 3, 7],
      [8, 9, 33],
      [11, 4, 2],
    ]) {
      const a = rng.fillNormal(new Float32Array(n * d));
      const b = rng.fillNormal(new Float32Array(m * d));
      const c = sqEuclideanCost(a, b, n, m, d);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < m; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += (a[i * d + k] - b[j * d + k]) ** 2;
          expect(c[i * m + j]).toBeCloseTo(s, 9);
        }
    }
  });

  it('is 0 (not negative) for identical rows', () => {
    const a = new Float32Array([0.1, 0.2, 1e3, 0.3]);
    const c = sqEuclideanCost(a, a, 2, 2, 2);
    expect(c[0]).toBe(0);
    expect(c[3]).toBe(0);
  });
});

describe('otPairNoise', () => {
  it('pairs a shuffled copy back with its source and lowers total cost', () => {
    const rng = new Rng(4);
    const n = 16;
    const d = 10;
    const x0 = rng.fillNormal(new Float32Array(n * d));
    const perm = rng.permutation(n);
    const x1 = permuteRows(x0, perm, d);
    const paired = otPairNoise(x0, x1, n, d);
    expect([...paired]).toEqual([...x0]);

    const noise = rng.fillNormal(new Float32Array(n * d));
    const before = [...Array(n).keys()].reduce((s, i) => {
      let c = 0;
      for (let k = 0; k < d; k++) c += (x0[i * d + k] - noise[i * d + k]) ** 2;
      return s + c;
    }, 0);
    expect(otAssignment(x0, noise, n, d).cost).toBeLessThanOrEqual(before + 1e-9);
  });
});
