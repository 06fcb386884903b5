import { describe, expect, it } from 'vitest';
import { FIXED_SOLVER_NAMES, ModelManifest } from '../manifest';
import {
  HYPERPARAMETERS,
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
