/** Small pure parts of the jobs module: handler registry check, progress history, env config. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../config/config';
import { checkHandlers, FineTuneJobView, FineTuneResultView, JobHandler } from './fine-tune.types';
import { toGraphql } from './fine-tunes.types.graphql';
import { hyperparameterProblems } from './hyperparameters';
import { loadJobsConfig } from './jobs.config';
import { recordProgress } from './progress';

const h: JobHandler = async () => ({
  model: 'm@1',
  modelDir: '/x',
  metrics: {},
  ood: { error: 'n/a' },
});

describe('checkHandlers (one handler per job name, checked when a worker starts)', () => {
  it('accepts exactly one handler per name', () => {
    expect(() => checkHandlers({ 'fine-tune': h })).not.toThrow();
  });
  it('names a missing handler and an unknown job', () => {
    expect(() => checkHandlers({})).toThrow(/missing for fine-tune/);
    expect(() => checkHandlers({ 'fine-tune': h, export: h })).toThrow(/no such job export/);
  });
});

describe('recordProgress', () => {
  const step = (epoch: number, step: number, loss: number) => ({
    epoch,
    epochs: 2,
    step,
    stepsPerEpoch: 10,
    progress: 0,
    loss,
  });
  const end = (epoch: number, loss: number) => ({
    epoch,
    epochs: 2,
    step: 0,
    stepsPerEpoch: 0,
    progress: 0,
    loss,
    metrics: { accuracy: 0.5 },
  });
  it('keeps the latest report and one history entry per finished epoch', () => {
    let s = { latest: null, history: [] } as Parameters<typeof recordProgress>[0];
    s = recordProgress(s, step(0, 3, 1));
    expect(s.history).toEqual([]);
    s = recordProgress(s, end(0, 0.9));
    s = recordProgress(s, step(1, 1, 0.8));
    s = recordProgress(s, end(1, 0.7));
    // A resumed job re-reporting epoch 1 replaces it.
    s = recordProgress(s, end(1, 0.6));
    expect(s.latest).toMatchObject({ epoch: 1, step: 1, loss: 0.8 });
    expect(s.history).toEqual([
      { epoch: 0, loss: 0.9, metrics: { accuracy: 0.5 } },
      { epoch: 1, loss: 0.6, metrics: { accuracy: 0.5 } },
    ]);
  });
});

describe('hyperparameterProblems', () => {
  const limits = { maxEpochs: 100, maxSteps: 50 };
  it.each([
    [{ epochs: 1.5 }, 'epochs=1.5: expected an integer in [1, 100]'],
    [{ steps: 51 }, 'steps=51: expected an integer in [1, 50]'],
    [{ learningRate: 0 }, 'learningRate=0: expected a number in (0, 1]'],
    [{ labelSmoothing: 1 }, 'labelSmoothing=1: expected a number in [0, 1)'],
    [{ gradientMode: 'reverse' }, 'gradientMode="reverse": expected one of direct, adjoint'],
    [{ freezeFlow: 'yes' }, 'freezeFlow="yes": expected true or false'],
    [{ lr: 1 }, 'lr: unknown'],
  ])('%j → %s', (hp, msg) => {
    expect(hyperparameterProblems(hp, limits).join('; ')).toContain(`hyperparameters.${msg}`);
  });
  it('accepts valid values and nulls', () => {
    expect(
      hyperparameterProblems(
        { epochs: 3, tStar: 1, solver: 'rk4', seed: 0, allowResize: true, batchSize: null },
        limits,
      ),
    ).toEqual([]);
    expect(hyperparameterProblems([1], limits)).toEqual(['hyperparameters: expected an object']);
  });
});

describe('loadJobsConfig', () => {
  it('reads the environment', () => {
    const c = loadJobsConfig('redis://x:6379', { WORKER: '0', JOB_LOCK_MS: '5000' }, '/srv');
    expect(c).toMatchObject({ worker: false, lockDurationMs: 5000, jobsDir: '/srv/data/jobs' });
    expect(c.keepJobs).toBe(1000);
    expect(loadJobsConfig(null, { JOBS_KEEP: '7' }).keepJobs).toBe(7);
  });
  it('keeps checkpoints beside DATA_DIR by default (the shared data volume)', () => {
    expect(loadJobsConfig(null, { DATA_DIR: '/data/datasets' }).jobsDir).toBe('/data/jobs');
    expect(loadJobsConfig(null, { DATA_DIR: '/data/datasets', JOBS_DIR: '/ckpt' }).jobsDir).toBe(
      '/ckpt',
    );
  });
  it('reports every bad variable', () => {
    let err: unknown;
    try {
      loadJobsConfig(null, {
        WORKER: 'maybe',
        JOB_LOCK_MS: '-1',
        QUEUE_PREFIX: 'a b',
        JOBS_KEEP: '0',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/WORKER="maybe"/);
    expect(problems).toMatch(/JOB_LOCK_MS="-1"/);
    expect(problems).toMatch(/QUEUE_PREFIX="a b"/);
    // Keeping no finished job would drop it before anyone could read its result.
    expect(problems).toMatch(/JOBS_KEEP="0": expected an integer in \[1, 1000000\]/);
  });
  it('refuses WORKER=0 without Redis (nothing would run the jobs)', () => {
    expect(() => loadJobsConfig(null, { WORKER: '0' })).toThrow(/WORKER=0 needs REDIS_URL/);
  });
});

describe('toGraphql (the GraphQL view of a job)', () => {
  const view = (ood: FineTuneResultView['ood']): FineTuneJobView => ({
    id: 'ft_000000000001',
    status: 'succeeded',
    model: 'm@1',
    dataset: 'ds_a',
    evalDataset: null,
    oodDataset: 'ds_b',
    hyperparameters: {},
    progress: null,
    history: [],
    result: { model: 'm@1-ft.1', modelDir: '/x', metrics: { accuracy: 0.5 }, ood },
    error: null,
    attempts: 1,
    runs: [],
    createdAt: 't',
    startedAt: 't',
    finishedAt: 't',
  });

  it('carries the OOD primary, its selection AUROCs, or the fit error', () => {
    const sel = toGraphql(
      view({ primary: 'b', scores: ['a', 'b'], selectionAuroc: { a: 0.4, b: 0.9 } }),
    );
    expect(sel.oodDataset).toBe('ds_b');
    expect(sel.result).toMatchObject({
      oodPrimary: 'b',
      oodScores: ['a', 'b'],
      oodSelectionAuroc: [
        { name: 'a', value: 0.4 },
        { name: 'b', value: 0.9 },
      ],
    });
    expect(toGraphql(view({ primary: 'a', scores: ['a'] })).result!.oodSelectionAuroc).toBe(
      undefined,
    );
    expect(toGraphql(view({ error: 'too few images' })).result).toMatchObject({
      oodScores: [],
      oodError: 'too few images',
    });
  });
});
