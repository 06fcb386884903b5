/**
 * Fine-tuning imported models (docs/import.md "Fine-tuning imports"): the tiny SiT and the
 * torchcfm width-32 U-Net fixtures (test/fixtures/import) imported as model directories, then a
 * few steps head-only (frozen flow) and full, in the default adjoint mode. A class-conditional SiT
 * trains on its null class; an inference-only ONNX import trains its head only.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeModel } from '../../engine/onnx/proto';
import { Graph } from '../../engine/onnx/types';
import { ImportModelOptions, writeImportedModel } from '../import/model';
import { importOnnx } from '../import/onnx';
import { layerNormNet } from '../import/testing/user-graphs';
import { importNet } from '../import/plan';
import { planSit } from '../import/sit';
import { TORCHCFM_CIFAR10, planTorchcfmUNet } from '../import/torchcfm-unet';
import { readModelDir } from '../model-dir/io';
import { tinyDataset } from '../testing/tiny-data';
import { FineTuneHyperparameters } from './hyperparameters';
import { fineTuneModel, runFineTune } from './finetune-job';

const FIX = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'import');
let root: string;

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-ft-import-'));
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

const modelOptions = (out: string, hidden = 16): ImportModelOptions => ({
  out: join(root, out),
  name: out,
  classes: ['c0', 'c1'],
  head: { kind: 'pooled', hidden, featurePool: 2 },
  solver: { name: 'euler', steps: 1, tStar: 0.5 },
});

async function importSit(out: string, classConditional = false): Promise<string> {
  const imp = await importNet(join(FIX, 'sit-tiny.torch1.pt'), ['ema'], (sd, r) =>
    planSit(sd, r, 'sit-tiny.torch1.pt', { path: 'linear', heads: 4, classConditional }),
  );
  return (await writeImportedModel(imp, modelOptions(out))).dir;
}

async function fineTune(base: string, out: string, hp: FineTuneHyperparameters, shape: number[]) {
  return runFineTune({
    baseModelDir: base,
    dataset: 'tiny',
    data: tinyDataset({ n: 8, classes: 2, shape: shape as [number, number, number], seed: 5 }),
    hyperparameters: {
      epochs: 1,
      batchSize: 2,
      learningRate: 1e-2,
      warmupEpochs: 0,
      ...hp,
    },
    maxSteps: 2,
    outputDir: join(root, out),
    name: out,
    version: '1',
    checkpointDir: join(root, `${out}.ckpt`),
    threads: 1,
  });
}

function changed(a: Graph, b: Graph, names: string[]): string[] {
  return names.filter((n) => {
    const x = a.initializers.get(n)!.data as Float32Array;
    const y = b.initializers.get(n)!.data as Float32Array;
    return x.some((v, i) => v !== y[i]);
  });
}

/** Head-only: loss finite, head weights move, the flow stays bit-identical. Full: the flow moves. */
async function headOnlyThenFull(base: string, shape: number[], tag: string): Promise<void> {
  const b = await readModelDir(base);
  const headNames = [...b.head.initializers.keys()].filter((n) => n.includes('.'));
  const velNames = JSON.parse(b.velocity.metadata!['prg.params']) as string[];

  const head = await fineTune(base, `${tag}-head`, { freezeFlow: true }, shape);
  expect(Number.isFinite(head.metrics.finalLoss)).toBe(true);
  const h = await readModelDir(head.modelDir);
  expect(changed(b.head, h.head, headNames).length).toBeGreaterThan(0);
  for (const [k, t] of b.velocity.initializers)
    expect(h.velocity.initializers.get(k)!.data, k).toEqual(t.data);

  const full = await fineTune(base, `${tag}-full`, { freezeFlow: false, lambdaFlow: 0.5 }, shape);
  expect(Number.isFinite(full.metrics.finalLoss)).toBe(true);
  const f = await readModelDir(full.modelDir);
  expect(changed(b.velocity, f.velocity, velNames).length).toBeGreaterThan(velNames.length / 2);
  expect(changed(b.head, f.head, headNames).length).toBeGreaterThan(0);
}

describe('fine-tuning imported models (adjoint, the default)', () => {
  it('tiny SiT: head-only keeps the flow bit-identical; full trains it', async () => {
    await headOnlyThenFull(await importSit('sit'), [4, 8, 8], 'sit');
  }, 120_000);

  it('torchcfm U-Net at width 32 (2.2 M parameters): head-only and full', async () => {
    const opts = { ...TORCHCFM_CIFAR10, numChannels: 32, numHeadChannels: 16 };
    const imp = await importNet(join(FIX, 'torchcfm-unet-w32.torch2.pt'), ['ema_model'], (sd) =>
      planTorchcfmUNet(sd, opts),
    );
    const dir = (await writeImportedModel(imp, modelOptions('unet'))).dir;
    await headOnlyThenFull(dir, [3, 32, 32], 'unet');
  }, 600_000);

  it('a class-conditional SiT trains on its null class', async () => {
    const base = await importSit('sit-cond', true);
    const b = await readModelDir(base);
    expect(b.manifest.architecture.velocity.labels).toEqual({ classes: 10, nullClass: 10 });
    expect(b.velocity.inputs.map((i) => i.name)).toEqual(['x', 't', 'y']);
    const r = await fineTune(base, 'sit-cond-full', { lambdaFlow: 0.5 }, [4, 8, 8]);
    expect(Number.isFinite(r.metrics.finalLoss)).toBe(true);
    const f = await readModelDir(r.modelDir);
    // The exported net keeps its label input and label range.
    expect(f.velocity.inputs.map((i) => i.name)).toEqual(['x', 't', 'y']);
    expect(f.manifest.architecture.velocity.labels).toEqual({ classes: 10, nullClass: 10 });
  }, 120_000);

  it('an inference-only ONNX import: the flow is refused naming the op, the head trains', async () => {
    const file = join(root, 'ln.onnx');
    await fs.writeFile(file, encodeModel(layerNormNet()));
    const imp = await importOnnx(file, {
      contract: {
        input: 'sample',
        time: 'timestep',
        output: 'out',
        convention: 'data-at-0',
        tScale: 1,
      },
      interpolant: 'icfm',
    });
    const base = (await writeImportedModel(imp, modelOptions('ln'))).dir;
    await expect(fineTune(base, 'ln-full', {}, [4, 8, 8])).rejects.toThrow(
      /inference-only: .*no gradient rule \(LayerNormalization\).*freezeFlow: true/,
    );
    for (const gradientMode of ['adjoint', 'direct'] as const) {
      const r = await fineTune(
        base,
        `ln-head-${gradientMode}`,
        { freezeFlow: true, gradientMode },
        [4, 8, 8],
      );
      expect(Number.isFinite(r.metrics.finalLoss)).toBe(true);
    }
  }, 120_000);

  it('the job API (fineTuneModel): head-only on an imported SiT; an inference-only flow fails before any phase', async () => {
    const base = await importSit('sit-job');
    const job = (name: string, baseModelDir: string, hp: FineTuneHyperparameters) =>
      fineTuneModel({
        baseModelDir,
        dataset: 'tiny',
        hyperparameters: { epochs: 1, batchSize: 2, ...hp },
        outputDir: join(root, name),
        name,
        version: '1',
        checkpointDir: join(root, `${name}.ckpt`),
        data: tinyDataset({ n: 4, classes: 2, shape: [4, 8, 8], seed: 7 }),
      } as Parameters<typeof fineTuneModel>[0]);
    const r = await job('sit-job-head', base, { freezeFlow: true });
    const b = await readModelDir(base);
    const f = await readModelDir(r.modelDir);
    for (const [k, t] of b.velocity.initializers)
      expect(f.velocity.initializers.get(k)!.data, k).toEqual(t.data);
    expect(Number.isFinite(r.metrics.finalLoss)).toBe(true);
    expect(f.manifest.provenance.import).toBeUndefined(); // a fine-tune records its parent instead
    expect(f.manifest.provenance.parent).toBe('sit-job@1');

    const ln = (await fs.readdir(root)).includes('ln') ? join(root, 'ln') : undefined;
    if (!ln) throw new Error('the inference-only model of the previous test is missing');
    await expect(job('ln-job', ln, {})).rejects.toThrow(/inference-only.*LayerNormalization/);
    await expect(fs.stat(join(root, 'ln-job.ckpt'))).rejects.toThrow();
  }, 120_000);
});
