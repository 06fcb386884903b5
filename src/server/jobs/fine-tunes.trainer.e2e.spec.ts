/**
 * The real trainer (fineTuneModel, src/prg/training/finetune-job.ts) behind the API, end to end on
 * a tiny model and a tiny uploaded dataset: upload → POST /fine-tunes → per-epoch history with the
 * trainer's metrics → the new version classifies at once. Cancel of a real run.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zip, ZipSpec } from '../datasets/testing/fixtures';
import { createTestApp, TestApp, testPng } from '../testing/test-app';
import { FineTuneJobView } from './fine-tune.types';
import { tempJobsEnv, waitForJob } from './testing/helpers';

let t: TestApp;
let root: string;
let dataset: string;
let stripes: string;
const http = () => request(t.app.getHttpServer());
/** POST /fine-tunes of the tiny model on the toy dataset, with `body`'s fields on top. */
const postJob = (body: Record<string, unknown>) =>
  http()
    .post('/fine-tunes')
    .send({ model: 'tiny@0.0.1', dataset, ...body });
const terminal = (j: FineTuneJobView) => ['succeeded', 'failed', 'cancelled'].includes(j.status);

beforeAll(async () => {
  root = await tempJobsEnv('prg-ft-real-');
  delete process.env.REDIS_URL;
  delete process.env.WORKER;
  t = await createTestApp(
    [
      {
        name: 'tiny',
        version: '0.0.1',
        classes: ['c0', 'c1'],
        inputShape: [1, 8, 8],
        featurePool: 4,
        solver: { name: 'euler', steps: 2, tStar: 0.5 },
      },
    ],
    { threads: 1 },
  );
  // Two classes told apart by brightness; 8×8 grey like the model's input.
  const entries: ZipSpec[] = [];
  const flat = (v: number) =>
    sharp(Buffer.alloc(64, v), { raw: { width: 8, height: 8, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
  // 10 per class: the OOD fit holds out a tenth of the training set and needs at least 2 images.
  for (let i = 0; i < 10; i++) {
    entries.push({ name: `toy/dark/${i}.png`, data: await flat(20 + 5 * i) });
    entries.push({ name: `toy/light/${i}.png`, data: await flat(200 + 5 * i) });
  }
  const up = await http()
    .post('/datasets')
    .attach('file', await zip(entries), 'toy.zip');
  expect(up.status).toBe(201);
  expect(up.body.shape).toEqual([1, 8, 8]);
  dataset = up.body.id;
  // Images the model should flag: vertical and horizontal stripes, unlike any flat grey training
  // image (two folders, as every upload needs two classes; their names do not matter here).
  const stripe = (phase: number, vertical: boolean) => {
    const px = Buffer.alloc(64);
    for (let i = 0; i < 64; i++) px[i] = (vertical ? i % 8 : i >> 3) % 2 === phase ? 255 : 0;
    return sharp(px, { raw: { width: 8, height: 8, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
  };
  const odd: ZipSpec[] = [];
  for (let i = 0; i < 3; i++) {
    odd.push({ name: `odd/vertical/${i}.png`, data: await stripe(i % 2, true) });
    odd.push({ name: `odd/horizontal/${i}.png`, data: await stripe(i % 2, false) });
  }
  const up2 = await http()
    .post('/datasets')
    .attach('file', await zip(odd), 'odd.zip');
  expect(up2.status).toBe(201);
  stripes = up2.body.id;
});

afterAll(async () => {
  await t?.close();
  await fs.rm(root, { recursive: true, force: true });
});

describe('fine-tune jobs with the real trainer', () => {
  it('trains, reports each epoch, and serves the new version at once', async () => {
    const res = await postJob({
      hyperparameters: { epochs: 2, batchSize: 4, learningRate: 0.01, warmupEpochs: 0 },
    });
    expect(res.status).toBe(201);
    const job = await waitForJob(t.app, res.body.id, terminal);
    expect(job.error).toBeNull();
    expect(job.status).toBe('succeeded');
    expect(job.history).toHaveLength(2);
    for (const h of job.history) expect(Number.isFinite(h.loss)).toBe(true);
    expect(job.result!.model).toBe(`tiny@0.0.1-ft.${job.id.slice(3)}`);

    // OOD thresholds fitted on the new model before it was published; the primary is the score
    // the fit's robust selection chose and its guard passed (src/prg/ood/selection.ts), as
    // recorded in the model's ood.json, and the served manifest says the same.
    const ood = job.result!.ood as { primary: string; scores: string[] };
    const stats = JSON.parse(
      await fs.readFile(path.join(job.result!.modelDir, 'ood.json'), 'utf8'),
    ) as { fit: { guard: { primary: string; passing: string[]; action: string } } };
    expect(ood.primary).toBe(stats.fit.guard.primary);
    // 'failed' (no score passes on this untrained tiny model) keeps the requested primary.
    if (stats.fit.guard.action !== 'failed') expect(stats.fit.guard.passing).toContain(ood.primary);
    expect(ood.scores).toContain(ood.primary);
    const model = await http().get(`/models/${encodeURIComponent(job.result!.model)}`);
    expect(model.status).toBe(200);
    expect(model.body.classes).toEqual(['dark', 'light']);
    expect(model.body.ood.primary).toBe(ood.primary);
    expect(Number.isFinite(model.body.ood.scores[ood.primary].threshold)).toBe(true);
    // Nothing left in MODELS_DIR but published models.
    expect((await fs.readdir(t.modelsDir)).filter((n) => n.startsWith('.'))).toEqual([]);
    const cls = await http()
      .post('/classify')
      .field('model', job.result!.model)
      .attach('images', await testPng(8, 8, 1, 3), 'x.png');
    expect(cls.status).toBe(200);
    expect(cls.body.model).toBe(job.result!.model);
    expect(['dark', 'light']).toContain(cls.body.results[0].label);
  });

  it('evaluates each epoch on an evalDataset', async () => {
    const res = await postJob({
      evalDataset: dataset,
      hyperparameters: { epochs: 1, batchSize: 4, warmupEpochs: 0 },
    });
    expect(res.status).toBe(201);
    expect(res.body.evalDataset).toBe(dataset);
    const job = await waitForJob(t.app, res.body.id, terminal);
    expect(job.status).toBe('succeeded');
    const acc = job.history[0].metrics?.evalAccuracy;
    expect(acc).toBeGreaterThanOrEqual(0);
    expect(acc).toBeLessThanOrEqual(1);
  });

  it('chooses the primary OOD score on an oodDataset of images to flag', async () => {
    const res = await postJob({
      oodDataset: stripes,
      hyperparameters: { epochs: 1, batchSize: 4, warmupEpochs: 0 },
    });
    expect(res.status).toBe(201);
    expect(res.body.oodDataset).toBe(stripes);
    const job = await waitForJob(t.app, res.body.id, terminal);
    expect(job.error).toBeNull();
    const ood = job.result!.ood as { primary: string; scores: string[] };
    expect(ood.scores).toContain(ood.primary);
    const dir = job.result!.modelDir;
    const stats = JSON.parse(await fs.readFile(path.join(dir, 'ood.json'), 'utf8'));
    const sel = stats.fit.primarySelection;
    expect(sel.chosen).toBe(ood.primary);
    expect(sel.nOut).toBe(6);
    expect(sel.auroc[sel.chosen]).toBe(Math.max(...(Object.values(sel.auroc) as number[])));
    // The job's result says why: every score's AUROC against the oodDataset.
    expect((job.result!.ood as { selectionAuroc: unknown }).selectionAuroc).toEqual(sel.auroc);
  });

  it('cancels a real run', async () => {
    const res = await postJob({ hyperparameters: { epochs: 200, batchSize: 2 } });
    await waitForJob(t.app, res.body.id, (j) => j.progress !== null);
    const c = await http().post(`/fine-tunes/${res.body.id}/cancel`);
    expect(c.status).toBe(200);
    const done = await waitForJob(t.app, res.body.id, terminal);
    expect(done.status).toBe('cancelled');
    expect(done.progress!.epoch).toBeLessThan(199);
  });
});
