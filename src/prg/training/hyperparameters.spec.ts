import { describe, expect, it } from 'vitest';
import { FIXED_SOLVER_NAMES, ModelManifest } from '../manifest';
import {
  AUTO_RULE,
  HYPERPARAMETERS,
  autoBatchSize,
  autoPhases,
  expectation,
  hyperparameterProblem,
  resolveHyperparameters,
} from './hyperparameters';

/** Only the solver setting is read from the base model. */
const base = (name: ModelManifest['solver']['name']) =>
  ({ solver: { name, steps: 4, tStar: 0.5 } }) as ModelManifest;

describe('fine-tune hyperparameters table', () => {
  it('fills defaults from the table and the base model (an adaptive solver becomes euler)', () => {
    expect(resolveHyperparameters({}, base('dopri5'))).toEqual({
      epochs: 10,
      batchSize: 128,
      learningRate: 2.5e-4,
      weightDecay: 0.05,
      warmupEpochs: 1,
      labelSmoothing: 0.1,
      lambdaFlow: 1,
      lambda: 1,
      steps: 4,
      tStar: 0.5,
      solver: 'euler',
      gradientMode: 'adjoint',
      freezeFlow: false,
      seed: 0,
      allowResize: false,
    });
    const r = resolveHyperparameters({ freezeFlow: true, lambdaFlow: 2 }, base('rk4'));
    expect(r).toMatchObject({ solver: 'rk4', lambdaFlow: 2, lambda: 0 });
  });

  it('refuses values outside the table, naming every one', () => {
    expect(() =>
      resolveHyperparameters({ epochs: 0, tStar: 2, labelSmoothing: 1 }, base('euler')),
    ).toThrow(
      'hyperparameters.epochs=0: expected an integer in [1, 1000000]; ' +
        'hyperparameters.labelSmoothing=1: expected a number in [0, 1); ' +
        'hyperparameters.tStar=2: expected a number in (0, 1]',
    );
  });

  it('lowers bound maxima to the deployment limits', () => {
    const limits = { maxEpochs: 3, maxSteps: 8 };
    expect(hyperparameterProblem('steps', 8, limits)).toBeNull();
    expect(hyperparameterProblem('steps', 9, limits)).toBe(
      'hyperparameters.steps=9: expected an integer in [1, 8]',
    );
    expect(hyperparameterProblem('epochs', 4, limits)).toMatch(/\[1, 3\]/);
    // batchSize is not bound to a deployment limit.
    expect(hyperparameterProblem('batchSize', 4096, limits)).toBeNull();
  });

  it('takes the solver names from the manifest', () => {
    expect(HYPERPARAMETERS.solver.values).toBe(FIXED_SOLVER_NAMES);
    expect(expectation(HYPERPARAMETERS.solver)).toBe('one of euler, midpoint, rk4');
  });
});

describe('"auto" hyperparameters (the job defaults)', () => {
  it('sizes the batch from the upload: about n/20, a power of two in [16, 128], ≤ n', () => {
    expect([10, 150, 600, 1500, 5000, 60000].map((n) => autoBatchSize(n))).toEqual([
      8, 16, 32, 64, 128, 128,
    ]);
  });

  it('runs the head on the frozen flow first, then the flow at a lower rate', () => {
    const [head, flow] = autoPhases(600, {});
    expect(head.phase).toBe('head');
    expect(head.hyperparameters).toMatchObject({
      batchSize: 32,
      epochs: 7,
      freezeFlow: true,
      lambdaFlow: 0,
      gradientMode: 'adjoint',
      learningRate: AUTO_RULE.head.learningRate,
    });
    expect(flow.hyperparameters).toMatchObject({
      batchSize: 32,
      epochs: 3,
      freezeFlow: false,
      learningRate: AUTO_RULE.flow.learningRate,
    });
    // Bounds: a large dataset gets one epoch per phase, a tiny one the maximum.
    expect(autoPhases(60000, {}).map((p) => p.hyperparameters.epochs)).toEqual([1, 1]);
    expect(autoPhases(100, {}).map((p) => p.hyperparameters.epochs)).toEqual([20, 10]);
  });

  it('lets given fields win, and freezeFlow picks one phase', () => {
    const [head, flow] = autoPhases(600, { epochs: 2, batchSize: 64, learningRate: 5e-4 });
    expect(head.hyperparameters).toMatchObject({ batchSize: 64, epochs: 7, learningRate: 1e-3 });
    expect(flow.hyperparameters).toMatchObject({ batchSize: 64, epochs: 2, learningRate: 5e-4 });
    const only = autoPhases(600, { freezeFlow: true, epochs: 3 });
    expect(only.map((p) => p.phase)).toEqual(['head']);
    expect(only[0].hyperparameters.epochs).toBe(3);
    expect(autoPhases(600, { freezeFlow: false }).map((p) => p.phase)).toEqual(['flow']);
    // Every phase is valid against the table.
    for (const p of autoPhases(600, { lambdaFlow: 2 }))
      expect(() => resolveHyperparameters(p.hyperparameters, base('euler'))).not.toThrow();
  });
});
