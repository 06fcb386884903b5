import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeIdxPair } from '../data';
import { GraphSession, sessionCache } from '../../engine/runtime/session';
import { loadPrgModel } from '../inference';
import { fitOodFromSpecs } from '../ood/fit';
import { readModelDir } from '../model-dir/io';
import { createTinyModel } from '../testing/tiny-model';
import { tinyDataset } from '../testing/tiny-data';
import { TrainingAborted } from './common';
import { evaluateModel } from './evaluate';
import { RunFineTuneOptions, fineTuneModel, runFineTune } from './finetune-job';
import { FineTuneProgress } from './job-api';

let root: string;
const data = tinyDataset({ n: 16, classes: 2, seed: 3 });
beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-ft-'));
  await createTinyModel(join(root, 'base'), {
    classes: ['c0', 'c1'],
    inputShape: [1, 8, 8],
    featurePool: 4,
    solver: { name: 'euler', steps: 2, tStar: 0.5 },
  });
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

const opts = (name: string, extra: Partial<RunFineTuneOptions> = {}): RunFineTuneOptions => ({
  baseModelDir: join(root, 'base'),
  dataset: 'tiny',
  data,
  evalData: data,
  hyperparameters: {
    epochs: 4,
    batchSize: 4,
    learningRate: 1e-2,
    warmupEpochs: 0,
    lambdaFlow: 0.5,
  },
  outputDir: join(root, name),
  name: 'tiny-ft',
  version: '1.0.0',
  checkpointDir: join(root, `${name}.ckpt`),
  threads: 1,
  ...extra,
});

describe('fine-tuning', () => {
  it('learns a separable toy task and writes a loadable, evaluated model', async () => {
    const before = await loadPrgModel(join(root, 'base'), { threads: 1 });
    const acc0 = (await evaluateModel(before, data)).accuracy;
    await before.release();
    const r = await runFineTune(opts('a', { evalDataset: 'tiny-eval' }));
    expect(r.steps).toBe(16);
    const m = await loadPrgModel(r.modelDir, { threads: 1 });
    const acc = (await evaluateModel(m, data)).accuracy;
    expect(acc).toBe(1);
    expect(acc).toBeGreaterThan(acc0);
    expect(m.manifest.metrics.accuracy.value).toBe(1);
    expect(m.manifest.provenance.parent).toBe('tiny@0.0.1');
    await m.release();
  });

  it('adjoint mode, freezeFlow keeps the flow weights, and resume after an abort', async () => {
    const base = await readModelDir(join(root, 'base'));
    const frozen = await runFineTune(
      opts('frozen', {
        hyperparameters: { epochs: 1, batchSize: 4, gradientMode: 'adjoint', freezeFlow: true },
      }),
    );
    const f = await readModelDir(frozen.modelDir);
    for (const [k, t] of base.velocity.initializers)
      expect(f.velocity.initializers.get(k)!.data, k).toEqual(t.data);

    const ctl = new AbortController();
    await expect(
      runFineTune(
        opts('b', {
          signal: ctl.signal,
          resume: false,
          onStep: (p) => {
            if (p.globalStep === 6) ctl.abort();
          },
        }),
      ),
    ).rejects.toBeInstanceOf(TrainingAborted);
    await expect(runFineTune(opts('b', { resume: false }))).rejects.toThrow(/pass resume/);
    const b = await runFineTune(opts('b', { resume: true }));
    expect(b.resumedFromEpoch).toBe(1);
    const a = await readModelDir(join(root, 'a'));
    const bb = await readModelDir(b.modelDir);
    // The resumed run took the same steps as run "a": same weights up to float32 rounding.
    for (const [k, t] of a.head.initializers) {
      if (t.dtype !== 'float32') continue;
      const x = t.data as Float32Array;
      const y = bb.head.initializers.get(k)!.data as Float32Array;
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i])).toBeLessThan(1e-5);
    }
  });

  it('noPretrain starts from a random net of the same architecture', async () => {
    const base = await readModelDir(join(root, 'base'));
    const r = await runFineTune(
      opts('scratch', {
        noPretrain: true,
        maxSteps: 1,
        hyperparameters: { epochs: 1, batchSize: 4, steps: 1 },
      }),
    );
    const m = await readModelDir(r.modelDir);
    expect([...m.velocity.initializers.keys()].filter((k) => k.includes('.')).sort()).toEqual(
      [...base.velocity.initializers.keys()].filter((k) => k.includes('.')).sort(),
    );
    const w0 = base.velocity.initializers.get('input.conv.weight')!.data as Float32Array;
    const w1 = m.velocity.initializers.get('input.conv.weight')!.data as Float32Array;
    expect(Array.from(w1)).not.toEqual(Array.from(w0));
    expect(m.manifest.provenance.noPretrain).toBe(true);
  });

  it('fineTuneModel (job API): progress, cancellation, automatic resume, new head for new classes', async () => {
    const imgs = join(root, 'train-images.idx');
    const labs = join(root, 'train-labels.idx');
    await writeIdxPair(data, imgs, labs);
    const seen: FineTuneProgress[] = [];
    const ctl = new AbortController();
    const job = {
      baseModelDir: join(root, 'base'),
      dataset: `idx:${imgs},${labs}`,
      evalDataset: `idx:${imgs},${labs}`,
      hyperparameters: { epochs: 2, batchSize: 4, steps: 1 },
      outputDir: join(root, 'job'),
      name: 'job',
      version: '1',
      checkpointDir: join(root, 'job.ckpt'),
      signal: ctl.signal,
      onProgress: (p: FineTuneProgress) => {
        seen.push(p);
        if (seen.length === 3) ctl.abort();
      },
    };
    await expect(fineTuneModel(job)).rejects.toBeInstanceOf(TrainingAborted);
    expect(seen.map((p) => p.step)).toEqual([0, 1, 2]);
    const r = await fineTuneModel({ ...job, signal: undefined });
    expect(seen.at(-1)!.progress).toBe(1);
    expect(seen.filter((p) => p.metrics?.evalAccuracy !== undefined)).toHaveLength(2);
    const m = await readModelDir(r.modelDir);
    // IDX labels are named "0", "1": not the base model's classes, so a new head was trained.
    expect(m.manifest.classes).toEqual(['0', '1']);
    expect(m.manifest.solver.steps).toBe(1);
    expect(r.metrics.evalAccuracy).toBeGreaterThanOrEqual(0);
    // "auto" phases: the head learned on the frozen flow first, then the flow itself moved.
    const headPhase = await readModelDir(join(root, 'job.ckpt', 'head-model'));
    const base = await readModelDir(join(root, 'base'));
    const w = (d: typeof base) => d.velocity.initializers.get('input.conv.weight')!.data;
    expect(w(headPhase)).toEqual(w(base));
    expect(headPhase.manifest.classes).toEqual(['0', '1']);
    expect(Array.from(w(m) as Float32Array)).not.toEqual(Array.from(w(base) as Float32Array));
    expect(m.manifest.provenance.phase).toBe('finetune');
    // One progress scale over both phases (weighted by their cost), also across the resume.
    for (let i = 1; i < seen.length; i++)
      expect(seen[i].progress).toBeGreaterThanOrEqual(seen[i - 1].progress);
    // Delivered again after it finished: nothing to train, same model and accuracy written.
    const again = await fineTuneModel({ ...job, signal: undefined });
    expect(again.metrics.evalAccuracy).toBe(r.metrics.evalAccuracy);
    expect((await readModelDir(again.modelDir)).manifest.metrics.accuracy.value).toBe(
      r.metrics.evalAccuracy,
    );
  });

  it('a job gives back every ORT session it opened: finished, aborted, and with its OOD fit', async () => {
    // What the server's job handler runs (fine-tune.handler.ts): the trainer, then the OOD fit.
    // A session kept past the job would hold its ORT memory for the life of the process.
    const imgs = join(root, 'rel-images.idx');
    const labs = join(root, 'rel-labels.idx');
    await writeIdxPair(data, imgs, labs);
    const spec = `idx:${imgs},${labs}`;
    const live0 = GraphSession.live;
    const cached0 = sessionCache.size;
    let liveDuring = 0;
    const job = {
      baseModelDir: join(root, 'base'),
      dataset: spec,
      evalDataset: spec,
      hyperparameters: { epochs: 2, batchSize: 4, steps: 1 },
      outputDir: join(root, 'rel'),
      name: 'rel',
      version: '1',
      checkpointDir: join(root, 'rel.ckpt'),
      onProgress: () => {
        liveDuring = Math.max(liveDuring, GraphSession.live);
      },
    };
    const ctl = new AbortController();
    await expect(
      fineTuneModel({ ...job, signal: ctl.signal, onProgress: () => ctl.abort() }),
    ).rejects.toBeInstanceOf(TrainingAborted);
    expect([GraphSession.live, sessionCache.size]).toEqual([live0, cached0]);
    const r = await fineTuneModel(job);
    // The counter sees the training sessions while they exist.
    expect(liveDuring).toBeGreaterThan(live0);
    expect([GraphSession.live, sessionCache.size]).toEqual([live0, cached0]);
    // A fit that fails (too few held-out images per score) and one that succeeds.
    await expect(fitOodFromSpecs(r.modelDir, spec, spec, { seed: 1 })).rejects.toThrow(/held-out/);
    expect([GraphSession.live, sessionCache.size]).toEqual([live0, cached0]);
    const more = tinyDataset({ n: 60, classes: 2, seed: 5 });
    await writeIdxPair(more, imgs, labs);
    const fit = await fitOodFromSpecs(r.modelDir, spec, undefined, { seed: 1 });
    expect(Object.keys(fit.thresholds).length).toBeGreaterThan(0);
    expect([GraphSession.live, sessionCache.size]).toEqual([live0, cached0]);
  });
});
