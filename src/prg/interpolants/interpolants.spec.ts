import { describe, expect, it } from 'vitest';
import { Rng } from '../rng';
import { GVP, ICFM, OTCFM, flowMatchingBatch, makeInterpolant } from './index';

const n = 6;
const d = 5;

function batch(seed: number) {
  const rng = new Rng(seed);
  return {
    x0: rng.fillUniform(new Float32Array(n * d), -1, 1),
    x1: rng.fillNormal(new Float32Array(n * d)),
    eps: rng.fillNormal(new Float32Array(n * d)),
    t: rng.fillUniform(new Float32Array(n), 0.05, 0.95),
  };
}

/** The paper's formulas (§3.1), written out independently of the implementation. */
const formulas = {
  icfm: {
    x: (x0: number, x1: number, t: number) => (1 - t) * x0 + t * x1,
    u: (x0: number, x1: number) => x1 - x0,
  },
  gvp: {
    x: (x0: number, x1: number, t: number) =>
      Math.cos((Math.PI * t) / 2) * x0 + Math.sin((Math.PI * t) / 2) * x1,
    u: (x0: number, x1: number, t: number) =>
      -(Math.PI / 2) * Math.sin((Math.PI * t) / 2) * x0 +
      (Math.PI / 2) * Math.cos((Math.PI * t) / 2) * x1,
  },
};

describe('interpolants', () => {
  it('recompute x_t and u_t from the formulas (ICFM with and without σ_min, GVP)', () => {
    const { x0, x1, eps, t } = batch(1);
    for (const [interp, f, sig] of [
      [new ICFM(), formulas.icfm, 0],
      [new ICFM(0.1), formulas.icfm, 0.1],
      [new GVP(), formulas.gvp, 0],
    ] as const) {
      const xt = interp.sample(x0, x1, t, eps);
      const ut = interp.targetVelocity(x0, x1, t);
      for (let i = 0; i < n; i++)
        for (let k = i * d; k < (i + 1) * d; k++) {
          expect(xt[k]).toBeCloseTo(f.x(x0[k], x1[k], t[i]) + sig * eps[k], 5);
          expect(ut[k]).toBeCloseTo(f.u(x0[k], x1[k], t[i]), 5);
        }
    }
  });

  it('u_t is the time derivative of x_t (central finite difference)', () => {
    const { x0, x1, eps, t } = batch(2);
    // float64 coefficients on float32 data: the central difference with h = 1e-3 has truncation
    // error O(h²)·|x'''| ≈ 1e-6·(π/2)³ and float32 rounding ≈ 6e-8·|x|/h ≈ 1e-4: tolerance 1e-3.
    const h = 1e-3;
    for (const interp of [new ICFM(), new ICFM(0.2), new OTCFM(), new GVP()]) {
      const plus = interp.sample(
        x0,
        x1,
        t.map((s) => s + h),
        eps,
      );
      const minus = interp.sample(
        x0,
        x1,
        t.map((s) => s - h),
        eps,
      );
      const ut = interp.targetVelocity(x0, x1, t);
      for (let k = 0; k < ut.length; k++)
        expect(Math.abs((plus[k] - minus[k]) / (2 * h) - ut[k])).toBeLessThan(1e-3);
      for (const s of [0, 0.3, 0.9]) {
        expect(interp.dAlpha(s)).toBeCloseTo(
          (interp.alpha(s + 1e-6) - interp.alpha(s - 1e-6)) / 2e-6,
          6,
        );
        expect(interp.dSigma(s)).toBeCloseTo(
          (interp.sigma(s + 1e-6) - interp.sigma(s - 1e-6)) / 2e-6,
          6,
        );
      }
    }
  });

  it('endpoints: x_0 = data, x_1 = noise (no σ_min)', () => {
    const { x0, x1 } = batch(3);
    for (const interp of [new ICFM(), new GVP()]) {
      const a = interp.sample(x0, x1, new Float32Array(n).fill(0));
      const b = interp.sample(x0, x1, new Float32Array(n).fill(1));
      for (let k = 0; k < x0.length; k++) {
        expect(a[k]).toBeCloseTo(x0[k], 6);
        expect(b[k]).toBeCloseTo(x1[k], 6);
      }
    }
  });

  it('OT-CFM pairing never costs more than the independent pairing', () => {
    const rng = new Rng(5);
    const x0 = rng.fillUniform(new Float32Array(32 * 8), -1, 1);
    const ot = flowMatchingBatch(new OTCFM(), x0, 32, new Rng(6));
    const ind = flowMatchingBatch(new ICFM(), x0, 32, new Rng(6));
    const cost = (x1: Float32Array) => x1.reduce((s, v, k) => s + (v - x0[k]) ** 2, 0);
    // Same noise draws, different order: OT's total squared distance is minimal.
    expect([...ot.x1].sort()).toEqual([...ind.x1].sort());
    expect(cost(ot.x1)).toBeLessThan(cost(ind.x1));
    expect([...ot.t]).toEqual([...ind.t]);
  });

  it('flowMatchingBatch is reproducible and consistent with sample/targetVelocity', () => {
    const rng = new Rng(7);
    const x0 = rng.fillUniform(new Float32Array(n * d), -1, 1);
    for (const name of ['icfm', 'otcfm', 'gvp']) {
      const interp = makeInterpolant(name);
      const a = flowMatchingBatch(interp, x0, n, new Rng(8));
      const b = flowMatchingBatch(interp, x0, n, new Rng(8));
      expect([...a.xt]).toEqual([...b.xt]);
      expect([...a.xt]).toEqual([...interp.sample(x0, a.x1, a.t)]);
      expect([...a.ut]).toEqual([...interp.targetVelocity(x0, a.x1, a.t)]);
      for (const s of a.t) expect(s >= 0 && s < 1).toBe(true);
    }
    expect(() => makeInterpolant('ddpm')).toThrow(/unknown interpolant "ddpm"/);
    expect(() => new ICFM(0.1).sample(x0, x0, new Float32Array(n))).toThrow(/needs eps/);
    expect(() => new ICFM().sample(x0, x0, new Float32Array(4))).toThrow(/do not split/);
  });
});
