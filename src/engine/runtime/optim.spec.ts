import { describe, expect, it } from 'vitest';
import { Ema } from './ema';
import { Adam, AdamW, Sgd, clipGradNorm, decayMatricesOnly, globalNorm } from './optim';
import { ParamStore } from './params';
import { constantLr, cosineWithWarmup, scaleLr } from './schedule';

/**
 * Optimizer checks: a few steps against the PyTorch update formulas written out in float64.
 * The engine keeps state in float32, so agreement is to float32 rounding: values here are O(1)
 * and every step adds at most a few ulps (2^-24 ≈ 6e-8 each), so 1e-6 absolute is ample yet
 * far below the size of any formula mistake (a wrong bias correction or decay moves them by
 * more than 1e-3).
 */
const TOL = 1e-6;

function store(w: number[][]): ParamStore {
  const s = new ParamStore();
  w.forEach((v, i) => s.set(`p${i}`, i === 0 ? [v.length] : [1, v.length], Float32Array.from(v)));
  return s;
}
const W0 = [
  [1, -2, 0.5],
  [0.3, -0.7],
];
// Gradients for 3 steps (fixed, so the test does not depend on a loss).
const G = [
  [
    [0.5, -1, 2],
    [0.1, 0.2],
  ],
  [
    [0.4, 0.3, -1],
    [-0.3, 0.25],
  ],
  [
    [-0.2, 0.6, 0.1],
    [0.05, -0.5],
  ],
];
const gradMap = (g: number[][]) => new Map(g.map((v, i) => [`p${i}`, Float32Array.from(v)]));
const values = (s: ParamStore) => s.names().map((n) => Array.from(s.get(n).data));

function expectClose(a: number[][], b: number[][]) {
  a.forEach((row, i) => row.forEach((x, j) => expect(Math.abs(x - b[i][j])).toBeLessThan(TOL)));
}

/** Reference Adam/AdamW in float64 (torch.optim.Adam / AdamW docs pseudo-code). */
function refAdam(decoupled: boolean, lr: number, wd: number, b1: number, b2: number, eps: number) {
  const w = W0.map((r) => [...r]);
  const m = W0.map((r) => r.map(() => 0));
  const v = W0.map((r) => r.map(() => 0));
  G.forEach((gs, k) => {
    const t = k + 1;
    for (let i = 0; i < w.length; i++)
      for (let j = 0; j < w[i].length; j++) {
        let g = gs[i][j];
        if (decoupled) w[i][j] -= lr * wd * w[i][j];
        else g += wd * w[i][j];
        m[i][j] = b1 * m[i][j] + (1 - b1) * g;
        v[i][j] = b2 * v[i][j] + (1 - b2) * g * g;
        const mh = m[i][j] / (1 - b1 ** t);
        const vh = v[i][j] / (1 - b2 ** t);
        w[i][j] -= (lr * mh) / (Math.sqrt(vh) + eps);
      }
  });
  return w;
}

describe('optimizers', () => {
  it('AdamW first step by hand', () => {
    // w=1, g=0.5, lr=0.1, λ=0.1: decay to 0.99; m̂ = 0.5, v̂ = 0.25 → step 0.1·0.5/0.5 = 0.1.
    const s = new ParamStore();
    s.set('w', [1], Float32Array.of(1));
    new AdamW({ weightDecay: 0.1 }).step(s, new Map([['w', Float32Array.of(0.5)]]), 0.1);
    expect(s.get('w').data[0]).toBeCloseTo(0.89, 6);
  });

  it('AdamW matches the decoupled-decay formula over 3 steps', () => {
    const s = store(W0);
    const o = new AdamW({ weightDecay: 0.05, betas: [0.9, 0.999], eps: 1e-8 });
    for (const g of G) o.step(s, gradMap(g), 0.01);
    expect(o.stepCount).toBe(3);
    expectClose(values(s), refAdam(true, 0.01, 0.05, 0.9, 0.999, 1e-8));
  });

  it('Adam (L2 in the gradient) matches over 3 steps, and differs from AdamW', () => {
    const s = store(W0);
    const o = new Adam({ weightDecay: 0.05, betas: [0.8, 0.99], eps: 1e-6 });
    for (const g of G) o.step(s, gradMap(g), 0.01);
    const ref = refAdam(false, 0.01, 0.05, 0.8, 0.99, 1e-6);
    expectClose(values(s), ref);
    expect(Math.abs(ref[0][1] - refAdam(true, 0.01, 0.05, 0.8, 0.99, 1e-6)[0][1])).toBeGreaterThan(
      1e-5,
    );
  });

  it('SGD with momentum and with Nesterov match torch.optim.SGD', () => {
    for (const nesterov of [false, true]) {
      const s = store(W0);
      const o = new Sgd({ momentum: 0.9, nesterov, weightDecay: 0.01 });
      for (const g of G) o.step(s, gradMap(g), 0.1);
      const w = W0.map((r) => [...r]);
      const buf = W0.map((r) => r.map(() => 0));
      G.forEach((gs, k) => {
        for (let i = 0; i < w.length; i++)
          for (let j = 0; j < w[i].length; j++) {
            const g = gs[i][j] + 0.01 * w[i][j];
            buf[i][j] = k === 0 ? g : 0.9 * buf[i][j] + g;
            w[i][j] -= 0.1 * (nesterov ? g + 0.9 * buf[i][j] : buf[i][j]);
          }
      });
      expectClose(values(s), w);
    }
  });

  it('plain SGD: one step by hand', () => {
    const s = new ParamStore();
    s.set('w', [2], Float32Array.of(1, 2));
    new Sgd().step(s, new Map([['w', Float32Array.of(0.5, -1)]]), 0.2);
    expect(Array.from(s.get('w').data)).toEqual([Math.fround(0.9), Math.fround(2.2)]);
  });

  it('decay filter skips rank-1 tensors; state round-trips through state()/loadState()', () => {
    const s = store(W0);
    const o = new AdamW({ weightDecay: 0.5, decayFilter: decayMatricesOnly });
    const zero = gradMap(W0.map((r) => r.map(() => 0)));
    o.step(s, zero, 0.1);
    expect(Array.from(s.get('p0').data)).toEqual(W0[0].map(Math.fround)); // rank 1: untouched
    expect(s.get('p1').data[0]).toBeCloseTo(0.3 * (1 - 0.05), 6);

    const a = store(W0);
    const b = store(W0);
    const oa = new AdamW();
    oa.step(a, gradMap(G[0]), 0.01);
    b.copyFrom(a);
    const ob = new AdamW();
    ob.loadState(oa.state());
    oa.step(a, gradMap(G[1]), 0.01);
    ob.step(b, gradMap(G[1]), 0.01);
    expect(values(b)).toEqual(values(a));
  });

  it('rejects missing gradients and bad learning rates', () => {
    const s = store(W0);
    expect(() => new Adam().step(s, new Map(), 0.1)).toThrow(/no gradient for parameter p0/);
    expect(() => new Sgd().step(s, gradMap(G[0]), NaN)).toThrow(/learning rate/);
  });
});

describe('gradient clipping', () => {
  it('scales by maxNorm / (norm + 1e-6) only above maxNorm', () => {
    const g = new Map([
      ['a', Float32Array.of(3)],
      ['b', Float32Array.of(4, 0)],
    ]);
    expect(globalNorm(g)).toBe(5);
    expect(clipGradNorm(g, 10)).toBe(5);
    expect(g.get('a')![0]).toBe(3);
    expect(clipGradNorm(g, 1)).toBe(5);
    expect(g.get('a')![0]).toBeCloseTo(0.6, 6);
    expect(g.get('b')![0]).toBeCloseTo(0.8, 6);
    expect(globalNorm(g)).toBeCloseTo(1, 5);
    expect(() => clipGradNorm(new Map([['a', Float32Array.of(NaN)]]), 1)).toThrow(/norm is NaN/);
  });
});

describe('learning-rate schedules', () => {
  it('constant', () => {
    expect(constantLr(1e-4)(0)).toBe(1e-4);
    expect(constantLr(1e-4)(1e6)).toBe(1e-4);
  });

  it('cosine with linear warm-up (App. B.1 values)', () => {
    const base = 1.25e-4;
    const s = cosineWithWarmup({
      baseLr: base,
      totalSteps: 110,
      warmupSteps: 10,
      warmupLr: 1.25e-7,
      minLr: 1.25e-6,
    });
    expect(s(0)).toBeCloseTo(1.25e-7, 15);
    expect(s(5)).toBeCloseTo(1.25e-7 + (base - 1.25e-7) / 2, 15);
    expect(s(10)).toBeCloseTo(base, 15);
    // Half-way through the cosine: the mean of base and min.
    expect(s(60)).toBeCloseTo((base + 1.25e-6) / 2, 15);
    expect(s(85)).toBeCloseTo(
      1.25e-6 + 0.5 * (base - 1.25e-6) * (1 + Math.cos(Math.PI * 0.75)),
      15,
    );
    expect(s(110)).toBe(1.25e-6);
    expect(s(500)).toBe(1.25e-6);
    for (let t = 11; t < 110; t++) expect(s(t)).toBeLessThan(s(t - 1));
  });

  it('timm-default variant: cosine over the whole span', () => {
    const s = cosineWithWarmup({
      baseLr: 1,
      totalSteps: 100,
      warmupSteps: 10,
      warmupPrefix: false,
    });
    expect(s(10)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI * 0.1)), 12);
    expect(s(50)).toBeCloseTo(0.5, 12);
  });

  it('validates its arguments; linear lr scaling', () => {
    expect(() => cosineWithWarmup({ baseLr: 1, totalSteps: 10, warmupSteps: 10 })).toThrow(
      /warmupSteps/,
    );
    expect(scaleLr(1.25e-4, 1024)).toBeCloseTo(2.5e-4, 15);
  });
});

describe('EMA', () => {
  it('shadow ← d·shadow + (1−d)·θ, with optional warm-up of d', () => {
    const p = new ParamStore();
    p.set('w', [2], Float32Array.of(0, 10));
    const ema = new Ema(p, { decay: 0.9 });
    p.get('w').data.set([1, 0]);
    ema.update(p);
    expect(ema.shadow.get('w').data[0]).toBeCloseTo(0.1, 6);
    expect(ema.shadow.get('w').data[1]).toBeCloseTo(9, 5);
    ema.update(p);
    expect(ema.shadow.get('w').data[0]).toBeCloseTo(0.19, 6);
    const q = p.clone();
    ema.copyTo(q);
    expect(q.get('w').data[1]).toBeCloseTo(8.1, 5);

    const w = new Ema(p, { decay: 0.999, warmup: true });
    expect(w.currentDecay()).toBeCloseTo(0.1, 12); // (1+0)/(10+0)
    w.update(p);
    expect(w.currentDecay()).toBeCloseTo(2 / 11, 12);
  });
});
