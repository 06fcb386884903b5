/**
 * The fine-tune handler run twice for one job, as bull does when a worker dies after publishing the
 * model but before the queue recorded the job as done: the rerun answers with the published result
 * instead of training again and replacing the model.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTinyModel } from '../../prg/testing/tiny-model';
import { FineTuneHandler, JOB_RESULT_FILE } from './fine-tune.handler';
import type { FineTuneJobData, FineTuneTrainer, JobContext, OodFitter } from './fine-tune.types';
import { fakeTrainer } from './testing/fake-trainer';

const root = fs.mkdtemp(path.join(tmpdir(), 'prg-handler-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

async function jobData(id: string): Promise<FineTuneJobData> {
  const r = await root;
  const base = path.join(r, 'models', 'tiny');
  await createTinyModel(base).catch(() => undefined); // shared by the jobs of this file
  return {
    id,
    model: 'tiny@0.0.1',
    modelDir: base,
    dataset: 'ds_1',
    datasetSpec: 'unused by the fake trainer',
    hyperparameters: { epochs: 1 },
    outputName: 'tiny',
    outputVersion: `0.0.1-ft.${id.slice(3)}`,
    outputDir: path.join(r, 'models', `tiny-0.0.1-ft.${id.slice(3)}`),
    stagingDir: path.join(r, 'models', `.staging-${id}`),
    checkpointDir: path.join(r, 'jobs', id, 'checkpoints'),
    createdAt: new Date().toISOString(),
  };
}

function handler(): { h: FineTuneHandler; trainings: () => number } {
  let n = 0;
  const inner = fakeTrainer({ stepsPerEpoch: 2, stepDelayMs: 1 });
  const trainer: FineTuneTrainer = async (o) => {
    n++;
    return inner(o);
  };
  const ood: OodFitter = async () => ({ primary: 'msp', thresholds: { msp: 0.5 } }) as never;
  return { h: new FineTuneHandler(trainer, ood), trainings: () => n };
}

const ctx = (data: FineTuneJobData, attempt: number): JobContext => ({
  data,
  signal: new AbortController().signal,
  attempt,
  progress: async () => undefined,
});

describe('FineTuneHandler: a rerun after publishing', () => {
  it('returns the stored result and leaves the published model as it was', async () => {
    const d = await jobData('ft_00000000000a');
    const { h, trainings } = handler();
    const first = await h.handle(ctx(d, 1));
    expect(trainings()).toBe(1);
    expect(first.model).toBe('tiny@0.0.1-ft.00000000000a');
    const stored = JSON.parse(await fs.readFile(path.join(d.outputDir, JOB_RESULT_FILE), 'utf8'));
    expect(stored).toEqual({ jobId: d.id, result: first });
    const manifestBefore = await fs.readFile(path.join(d.outputDir, 'manifest.json'), 'utf8');

    // The worker died after the rename; bull runs the job again elsewhere (its checkpoints and
    // staging may be left over when the process died before removing them).
    await fs.mkdir(d.checkpointDir, { recursive: true });
    const again = await h.handle(ctx(d, 2));
    expect(again).toEqual(first);
    expect(trainings()).toBe(1);
    expect(await fs.readFile(path.join(d.outputDir, 'manifest.json'), 'utf8')).toBe(manifestBefore);
    await expect(fs.access(path.dirname(d.checkpointDir))).rejects.toThrow();
  });

  it("another job's result in the directory does not count: that job trains", async () => {
    const d = await jobData('ft_00000000000b');
    await fs.mkdir(d.outputDir, { recursive: true });
    await fs.writeFile(
      path.join(d.outputDir, JOB_RESULT_FILE),
      JSON.stringify({ jobId: 'ft_00000000000c', result: { model: 'x' } }),
    );
    const { h, trainings } = handler();
    const r = await h.handle(ctx(d, 1));
    expect(trainings()).toBe(1);
    expect(r.model).toBe('tiny@0.0.1-ft.00000000000b');
  });
});
