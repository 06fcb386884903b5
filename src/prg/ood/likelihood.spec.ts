import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../engine/onnx/builder';
import { runGraph } from '../../engine/runtime/session';
import { buildVelocityNet } from '../nets';
import { TINY_UNET } from '../testing/tiny-model';
import { Graph, tensor } from '../../engine/onnx/types';
import { expm, logDetFromCholesky, matvec } from '../testing/linalg';
import { cholesky, invertLower } from './linalg';
import { LOG_SCALE, ProbeRng, buildAugmentedStep, logLikelihood } from './likelihood';

const C = 2;
const H = 3;
const W = 3;
const D = C * H * W;

/** v(x, t) = A·x + b on flattened images (t is wired in with weight 0 to keep the input used). */
function linearField(a: Float64Array, bias: Float64Array): Graph {
  const b = new GraphBuilder('linear_field');
  const x = b.input('x', ['N', C, H, W]);
  const t = b.input('t', ['N']);
  const at = tensor('float32', [D, D]);
  for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) at.data[j * D + i] = a[i * D + j];
  const flat = b.reshape(x, [-1, D]);
  let v = b.add(b.matmul(flat, b.const(at)), b.const(tensor('float32', [D], bias)));
  v = b.add(v, b.mul(b.unsqueeze(t, [1]), 0));
  b.output(b.reshape(v, [-1, C, H, W]), 'v');
  return b.build();
}

function randomSystem(seed: number) {
  const rng = new ProbeRng(seed);
  const a = new Float64Array(D * D);
  for (let i = 0; i < D * D; i++) a[i] = (0.5 * rng.normal()) / Math.sqrt(D);
  for (let i = 0; i < D; i++) a[i * D + i] += 0.3; // non-zero trace: a sign error shows up
  const bias = new Float64Array(D).map(() => 0.2 * rng.normal());
  return { a, bias, rng };
}

/**
 * Closed form: x(1) = e^A x0 + φ(A) b, with e^A and φ(A)b read off the exponential of the
 * augmented matrix [[A, b], [0, 0]]. If x(1) ~ N(0, I) then x0 = e^{−A}(x(1) − φ(A)b) is Gaussian
 * with mean μ0 = −e^{−A}φ(A)b and covariance Σ0 = e^{−A}e^{−Aᵀ}; its log-density is computed here
 * directly from Σ0 (Cholesky), independently of the change-of-variables formula under test.
 */
function exactLogDensity(a: Float64Array, bias: Float64Array, x0: ArrayLike<number>): number {
  const n = D + 1;
  const aug = new Float64Array(n * n);
  for (let i = 0; i < D; i++) {
    for (let j = 0; j < D; j++) aug[i * n + j] = a[i * D + j];
    aug[i * n + D] = bias[i];
  }
  const e = expm(aug, n);
  const phiB = new Float64Array(D).map((_, i) => e[i * n + D]);
  const minusA = a.map((v) => -v);
  const eInv = expm(minusA, D);
  const mu = matvec(eInv, phiB, D).map((v) => -v);
  const sigma = new Float64Array(D * D);
  for (let i = 0; i < D; i++)
    for (let j = 0; j < D; j++) {
      let s = 0;
      for (let k = 0; k < D; k++) s += eInv[i * D + k] * eInv[j * D + k];
      sigma[i * D + j] = s;
    }
  const l = cholesky(sigma, D);
  const z = matvec(
    invertLower(l, D),
    Array.from(x0, (v, i) => v - mu[i]),
    D,
  );
  let q = 0;
  for (const v of z) q += v * v;
  return -0.5 * D * Math.log(2 * Math.PI) - 0.5 * logDetFromCholesky(l, D) - 0.5 * q;
}

function images(rng: ProbeRng, n: number): Float32Array {
  return new Float32Array(n * D).map(() => 0.8 * rng.normal());
}

describe('log-likelihood by the instantaneous change of variables (paper §4.3.1 eqs. 10–11)', () => {
  it('builds one augmented step graph per solver with the documented inputs and outputs', () => {
    const { a, bias } = randomSystem(1);
    for (const s of ['euler', 'midpoint', 'rk4'] as const) {
      const g = buildAugmentedStep(linearField(a, bias), s);
      expect(g.inputs.map((i) => i.name)).toEqual(['x', 't', 'h', 'eps']);
      expect(g.outputs.map((o) => o.name)).toEqual(['x_next', 'ddiv']);
    }
  });

  it('exact trace mode matches the closed-form Gaussian density of a linear flow', async () => {
    const { a, bias, rng } = randomSystem(2);
    const n = 5;
    const x0 = images(rng, n);
    const r = await logLikelihood(linearField(a, bias), x0, n, {
      solver: 'rk4',
      steps: 16,
      probe: 'exact',
      dequantize: false,
    });
    let tr = 0;
    for (let i = 0; i < D; i++) tr += a[i * D + i];
    for (let i = 0; i < n; i++) {
      const want = exactLogDensity(a, bias, x0.subarray(i * D, (i + 1) * D));
      // float32 state over 16 RK4 steps: the global error is O(h⁴)·‖x‖ ≈ 1e-5; the prior term
      // ½‖x(1)‖² carries it plus float32 rounding, so 1e-3 nats on values of order 30 is tight.
      expect(Math.abs(r.logpModel[i] - want)).toBeLessThan(1e-3);
      // ∫ ∇·v dt = tr A exactly for a linear field (up to float32 summation).
      expect(r.divIntegral[i]).toBeCloseTo(tr, 4);
    }
  });

  it('Euler converges at first order toward the closed form', async () => {
    const { a, bias, rng } = randomSystem(3);
    const x0 = images(rng, 1);
    const want = exactLogDensity(a, bias, x0);
    const err = async (steps: number) => {
      const r = await logLikelihood(linearField(a, bias), x0, 1, {
        solver: 'euler',
        steps,
        probe: 'exact',
        dequantize: false,
      });
      return Math.abs(r.logpModel[0] - want);
    };
    const e8 = await err(8);
    const e32 = await err(32);
    // first order: 4× the steps → about ¼ the error (ratio 3–5.5 allows for the O(h²) term).
    expect(e8 / e32).toBeGreaterThan(3);
    expect(e8 / e32).toBeLessThan(5.5);
  });

  it.each(['rademacher', 'gaussian'] as const)(
    'Hutchinson (%s) is unbiased with the predicted variance',
    async (probe) => {
      const { a, bias, rng } = randomSystem(4);
      const n = 400;
      const probes = 2;
      const x0 = images(rng, n);
      const r = await logLikelihood(linearField(a, bias), x0, n, {
        solver: 'euler',
        steps: 2,
        probe,
        probes,
        seed: 7,
        batchSize: 200,
        dequantize: false,
      });
      let tr = 0;
      let offSym = 0;
      let diag2 = 0;
      for (let i = 0; i < D; i++) {
        tr += a[i * D + i];
        diag2 += a[i * D + i] ** 2;
        for (let j = 0; j < D; j++) if (i !== j) offSym += ((a[i * D + j] + a[j * D + i]) / 2) ** 2;
      }
      // Var εᵀAε: Rademacher 2·Σ_{i≠j} S_ij², Gaussian 2·‖S‖_F² (S = (A + Aᵀ)/2); ÷ probes.
      const variance = (probe === 'rademacher' ? 2 * offSym : 2 * (offSym + diag2)) / probes;
      const errs = Array.from(r.divIntegral, (d) => d - tr);
      const mean = errs.reduce((s, e) => s + e, 0) / n;
      const sampleVar = errs.reduce((s, e) => s + (e - mean) ** 2, 0) / (n - 1);
      // unbiased: |mean error| within 4 standard errors
      expect(Math.abs(mean)).toBeLessThan(4 * Math.sqrt(variance / n));
      // sample variance within ±30 % of the theory (400 samples: its rel. s.d. is ≈ 7–10 %)
      expect(sampleVar / variance).toBeGreaterThan(0.7);
      expect(sampleVar / variance).toBeLessThan(1.3);
      // the same seed reproduces the same estimate
      const again = await logLikelihood(linearField(a, bias), x0.subarray(0, 3 * D), 3, {
        solver: 'euler',
        steps: 2,
        probe,
        probes,
        seed: 7,
        dequantize: false,
      });
      expect(again.divIntegral[0]).toBeCloseTo(r.divIntegral[0], 4);
    },
  );

  it('reports nats and bits/dim with the dequantisation and [−1, 1] scaling term', async () => {
    const { a, bias, rng } = randomSystem(5);
    const x0 = images(rng, 2);
    const r = await logLikelihood(linearField(a, bias), x0, 2, { probe: 'exact', steps: 4 });
    for (let i = 0; i < 2; i++) {
      expect(r.logpModel[i]).toBeCloseTo(r.logPrior[i] + r.divIntegral[i], 6);
      expect(r.nats[i]).toBeCloseTo(-r.logpModel[i] + D * LOG_SCALE, 6);
      expect(r.bitsPerDim[i]).toBeCloseTo(r.nats[i] / (D * Math.LN2), 9);
    }
    // dequantisation moves each pixel by at most half a grey level: the density barely changes.
    const plain = await logLikelihood(linearField(a, bias), x0, 2, {
      probe: 'exact',
      steps: 4,
      dequantize: false,
    });
    expect(Math.abs(plain.logpModel[0] - r.logpModel[0])).toBeLessThan(0.5);
    expect(plain.logpModel[0]).not.toBe(r.logpModel[0]);
  });

  it('rejects bad options with a clear error', async () => {
    const { a, bias } = randomSystem(6);
    await expect(
      logLikelihood(linearField(a, bias), new Float32Array(D), 1, { steps: 0 }),
    ).rejects.toThrow(/steps/);
    await expect(logLikelihood(linearField(a, bias), new Float32Array(3), 1)).rejects.toThrow(
      /values for 1 images/,
    );
  });

  it('exact divergence of a tiny U-Net (vjp w.r.t. the input) matches central finite differences', async () => {
    const net = buildVelocityNet({
      kind: 'unet',
      preset: 'XS',
      inputShape: [1, 8, 8],
      seed: 3,
      overrides: TINY_UNET,
    }).graph;
    const Dn = 64;
    const rng = new ProbeRng(9);
    const x = new Float32Array(Dn).map(() => 0.7 * rng.normal());
    // One Euler step of length 1 from t = 0: ∫∇·v ≈ 1·tr J(x, 0), exactly what is integrated.
    const r = await logLikelihood(net, x, 1, {
      solver: 'euler',
      steps: 1,
      probe: 'exact',
      dequantize: false,
    });
    const delta = 1e-2;
    const xs = new Float32Array(2 * Dn * Dn);
    for (let i = 0; i < Dn; i++) {
      xs.set(x, 2 * i * Dn);
      xs.set(x, (2 * i + 1) * Dn);
      xs[2 * i * Dn + i] += delta;
      xs[(2 * i + 1) * Dn + i] -= delta;
    }
    const out = await runGraph(net, {
      x: { dtype: 'float32', dims: [2 * Dn, 1, 8, 8], data: xs },
      t: { dtype: 'float32', dims: [2 * Dn], data: new Float32Array(2 * Dn) },
    });
    const v = out.v.data as Float32Array;
    let tr = 0;
    for (let i = 0; i < Dn; i++) tr += (v[2 * i * Dn + i] - v[(2 * i + 1) * Dn + i]) / (2 * delta);
    // float32 central differences at δ = 1e-2: rounding ≈ 1e-7/δ and truncation O(δ²) per term,
    // summed over 64 terms; 2 % of |tr J| (or 0.02) leaves room for both and catches any
    // transposed, mis-scaled or sign-flipped trace.
    expect(Math.abs(tr)).toBeGreaterThan(0.05);
    expect(Math.abs(r.divIntegral[0] - tr)).toBeLessThan(Math.max(0.02, 0.02 * Math.abs(tr)));
  });
});
