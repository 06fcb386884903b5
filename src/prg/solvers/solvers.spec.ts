import { describe, expect, it } from 'vitest';
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { tensor } from '../../engine/onnx/types';
import { runGraph } from '../../engine/runtime/session';
import { vjp } from '../../engine/autodiff';
import {
  DOPRI5,
  SOLVERS,
  integrateGraph,
  rkStep,
  solveOde,
  stagesPerStep,
  stepGraph,
} from './index';

/** dx/dt = −x·t, x(t) = x(0)·exp(−t²/2): non-autonomous, so the stage times c_i are exercised. */
const decay = (x: Float64Array, t: number) => x.map((v) => -v * t);
const decayExact = (x0: number, t: number) => x0 * Math.exp((-t * t) / 2);
const X0 = [1, -0.5, 2];

async function errorAt(solver: string, steps: number): Promise<number> {
  const r = await solveOde(decay, new Float64Array(X0), {
    solver,
    steps,
    t0: 0,
    t1: 2,
    adaptive: false,
  });
  return Math.max(...X0.map((v, i) => Math.abs(r.x[i] - decayExact(v, 2))));
}

/** Observed order log2(e(K) / e(2K)); expected p ± a margin for pre-asymptotic terms. */
const ORDER: [string, number, number][] = [
  ['euler', 1, 16],
  ['midpoint', 2, 16],
  ['rk4', 4, 8],
];

describe('numeric solvers', () => {
  it('tableaux are consistent: Σ b = 1, rows of a sum to c', () => {
    for (const tab of Object.values(SOLVERS)) {
      expect(tab.b.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
      tab.a.forEach((row, i) => expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(tab.c[i], 12));
      if (tab.e) expect(tab.e.reduce((s, v) => s + v, 0)).toBeCloseTo(0, 12);
    }
    expect(stagesPerStep(DOPRI5)).toBe(6);
  });

  it.each([...ORDER, ['dopri5 (fixed steps)', 5, 16] as [string, number, number]])(
    '%s converges at order %d',
    async (solver, p, k) => {
      const name = solver.split(' ')[0];
      const e1 = await errorAt(name, k);
      const e2 = await errorAt(name, 2 * k);
      const observed = Math.log2(e1 / e2);
      expect(observed).toBeGreaterThan(p - 0.2);
      expect(observed).toBeLessThan(p + 0.35);
    },
  );

  it('dopri5 meets its tolerance, spends more work for tighter ones, and reaches t1 exactly', async () => {
    // Damped rotation x' = A x, A = [[-0.5, -2], [2, -0.5]]: x(t) = e^{-t/2} R(2t) x0.
    const f = (x: Float64Array) =>
      new Float64Array([-0.5 * x[0] - 2 * x[1], 2 * x[0] - 0.5 * x[1]]);
    const T = 3;
    const exact = [Math.exp(-T / 2) * Math.cos(2 * T), Math.exp(-T / 2) * Math.sin(2 * T)];
    let lastNfe = 0;
    for (const tol of [1e-3, 1e-5, 1e-7]) {
      const r = await solveOde(f, new Float64Array([1, 0]), {
        solver: 'dopri5',
        t1: T,
        atol: tol,
        rtol: tol,
        trajectory: true,
      });
      const err = Math.hypot(r.x[0] - exact[0], r.x[1] - exact[1]);
      // Local control, global error: allow 10× the tolerance (error accumulates over steps).
      expect(err).toBeLessThan(10 * tol);
      expect(r.ts[r.ts.length - 1]).toBe(T);
      expect(r.xs!.length).toBe(r.accepted + 1);
      expect(r.nfe).toBeGreaterThan(lastNfe);
      lastNfe = r.nfe;
    }
  });

  it('integrates backwards (t1 < t0): forward then back returns to x0', async () => {
    for (const solver of ['rk4', 'dopri5']) {
      const fwd = await solveOde(decay, new Float64Array(X0), { solver, steps: 40, t1: 1.5 });
      const back = await solveOde(decay, fwd.x, { solver, steps: 40, t0: 1.5, t1: 0 });
      X0.forEach((v, i) => expect(back.x[i]).toBeCloseTo(v, 5));
    }
  });

  it('float32 state, trajectory grid and bad input', async () => {
    const r = await solveOde((x: Float32Array, t) => x.map((v) => -v * t), new Float32Array(X0), {
      solver: 'midpoint',
      steps: 5,
      t1: 0.5,
      trajectory: true,
    });
    expect(r.x).toBeInstanceOf(Float32Array);
    expect(r.ts).toHaveLength(6);
    expect(r.ts[5]).toBe(0.5);
    expect(r.nfe).toBe(10);
    await expect(solveOde(decay, new Float64Array(1), { solver: 'heun' })).rejects.toThrow(
      /unknown solver "heun"/,
    );
    await expect(solveOde(decay, new Float64Array(1), { steps: 0 })).rejects.toThrow(/steps/);
    await expect(
      solveOde(() => new Float64Array(2), new Float64Array(1), { solver: 'euler' }),
    ).rejects.toThrow(/velocity at t=0 has 2 values/);
  });
});

/** The same ODE as graph code: x [N, D], t [N] → −x·t. */
const decayGraph = (b: GraphBuilder) => (x: Value, t: Value) =>
  b.neg(b.mul(x, b.unsqueeze(t, [1])));

async function runIntegrate(solver: string, steps: number, t1 = 2): Promise<Float32Array> {
  const b = new GraphBuilder(`ode_${solver}_${steps}`);
  const x = b.input('x', ['N', 3]);
  const r = integrateGraph(b, decayGraph(b), x, { solver, steps, t1 });
  b.output(r.x, 'y');
  const out = await runGraph(b.build(), { x: tensor('float32', [1, 3], X0) });
  return out.y.data as Float32Array;
}

describe('graph solvers (run in ORT)', () => {
  it.each(ORDER)('%s unrolled in the graph converges at order %d', async (solver, p, k) => {
    const err = (y: Float32Array) =>
      Math.max(...X0.map((v, i) => Math.abs(y[i] - decayExact(v, 2))));
    // float32 rounding (~1e-7 · steps) is far below the smallest error compared here (~3e-6).
    const e1 = err(await runIntegrate(solver, k));
    const e2 = err(await runIntegrate(solver, 2 * k));
    const observed = Math.log2(e1 / e2);
    expect(observed).toBeGreaterThan(p - 0.2);
    expect(observed).toBeLessThan(p + 0.35);
  });

  it('matches the numeric form step for step (every solver, incl. fixed-step dopri5)', async () => {
    for (const solver of ['euler', 'midpoint', 'rk4', 'dopri5']) {
      const y = await runIntegrate(solver, 3, 1.2);
      let x = new Float64Array(X0);
      for (let s = 0; s < 3; s++)
        x = (await rkStep(SOLVERS[solver as 'rk4'], decay, x, s * 0.4, 0.4)).x;
      // float32 graph vs float64 reference: |x| ≤ 2, a few dozen ops → 1e-5 absolute.
      X0.forEach((_, i) => expect(Math.abs(y[i] - x[i])).toBeLessThan(1e-5));
    }
  });

  it('stepGraph takes t as an [N] input (one graph for every adjoint step) and keeps the trajectory', async () => {
    const b = new GraphBuilder('one_step');
    const x = b.input('x', ['N', 3]);
    const t = b.input('t', ['N']);
    b.output(stepGraph(b, decayGraph(b), x, t, 0.25, 'rk4'), 'y');
    const rows = [X0, [0.3, 0.1, -1]];
    const times = [0.5, 1.25];
    const out = await runGraph(b.build(), {
      x: tensor('float32', [2, 3], rows.flat()),
      t: tensor('float32', [2], times),
    });
    for (let n = 0; n < 2; n++) {
      const ref = (await rkStep(SOLVERS.rk4, decay, new Float64Array(rows[n]), times[n], 0.25)).x;
      ref.forEach((v, i) => expect(out.y.data[n * 3 + i] as number).toBeCloseTo(v, 5));
    }

    const b2 = new GraphBuilder('traj');
    const x2 = b2.input('x', ['N', 3]);
    const r = integrateGraph(b2, decayGraph(b2), x2, {
      solver: 'euler',
      steps: 4,
      t1: 0.8,
      trajectory: true,
    });
    expect(r.xs).toHaveLength(5);
    [0, 0.2, 0.4, 0.6, 0.8].forEach((v, i) => expect(r.ts[i]).toBeCloseTo(v, 12));
    expect(() => integrateGraph(b2, decayGraph(b2), x2, { solver: 'euler', steps: 0 })).toThrow(
      /steps/,
    );
  });

  it('the unrolled solver is differentiable by the autodiff (direct fine-tuning mode)', async () => {
    // The decay ODE is linear, so the unrolled map is y = G·x0 with one scalar G per solver:
    // d Σy / d x0_i = G = y_i / x0_i exactly, whatever the step count.
    const b = new GraphBuilder('ode_grad');
    const x = b.input('x', ['N', 3]);
    const y = integrateGraph(b, decayGraph(b), x, { solver: 'midpoint', steps: 4, t1: 1 }).x;
    b.output(y, 'y');
    b.output(b.reduceSum(y, [0, 1], false), 'loss');
    const g = vjp(b.build(), { of: ['loss'], wrt: ['x'], seed: 'ones' });
    const out = await runGraph(g.graph, { x: tensor('float32', [1, 3], X0) });
    const gx = out[g.grads.x].data as Float32Array;
    X0.forEach((v, i) => expect(gx[i]).toBeCloseTo((out.y.data[i] as number) / v, 5));
  });
});
