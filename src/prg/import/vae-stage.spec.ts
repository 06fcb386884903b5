/**
 * `prg import vae` end to end on a latent model directory: the stage is written with its
 * provenance, the model then takes images (encoder first), features equal the latent model's on
 * the encoder's output, the trajectory is decoded, and refusals name their reason.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main';
import { runCommand } from '../../cli/testing/run-command';
import { runGraph } from '../../engine/runtime/session';
import { loadPrgModel } from '../inference';
import { VaeProvenance } from '../manifest';
import { readModelDir } from '../model-dir/io';
import { createTinyModel } from '../testing/tiny-model';
import { tinyDataset } from '../testing/tiny-data';
import { runFineTune } from '../training/finetune-job';
import { FrozenEncoder } from '../training/frozen-encoder';
import { sha256File } from './plan';
import { readVaeReference } from './vae-stage';
import { maxAbsDiff } from './verify';

const FIX = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'import');
const VAE = join(FIX, 'vae-small.safetensors');
const REF = join(FIX, 'vae-small.ref.safetensors');
let root: string;

const run = (args: string[]) => runCommand(main, args);

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-vae-stage-'));
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

/** A random latent model taking the small VAE's 4×16×16 latents (64×64 images). */
const latentModel = (name: string) =>
  createTinyModel(join(root, name), { inputShape: [4, 16, 16], featurePool: 4, classes: 3 });

describe('prg import vae', () => {
  it('adds encoder + decoder; the model takes images and decodes its trajectory', async () => {
    const { dir } = await latentModel('m');
    const r = await run([
      'import',
      'vae',
      '--model-dir',
      dir,
      '--checkpoint',
      VAE,
      '--groups',
      '8',
      '--decoder',
      '--verify',
      REF,
      '--json',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out) as {
      image: number[];
      verify: { encoder: number; decoder: number };
      unmapped: string[];
    };
    expect(summary.image).toEqual([64, 64]);
    expect(summary.verify.encoder).toBeLessThanOrEqual(1e-4);
    expect(summary.verify.decoder).toBeLessThanOrEqual(1e-4);
    expect(summary.unmapped).toEqual([]);

    const loaded = await readModelDir(dir);
    const m = loaded.manifest;
    expect(m.preprocess).toEqual({
      kind: 'vae',
      image: { channels: 3, height: 64, width: 64, normalization: 'minus-one-one' },
      scalingFactor: 0.18215,
    });
    expect(m.files).toMatchObject({ encoder: 'vae-encoder.onnx', decoder: 'vae-decoder.onnx' });
    expect(m.input).toMatchObject({ channels: 4, height: 16, width: 16 });
    const prov = m.provenance.vae as VaeProvenance;
    expect(prov.source.sha256).toBe(await sha256File(VAE));
    expect(prov.mapping['encoder.mid_block.attentions.0.to_q.weight']).toBe(
      'encoder.mid_block.attentions.0.to_q.weight',
    );
    expect(prov.params.encoder).toBeGreaterThan(0);

    const ref = await readVaeReference(REF);
    const model = await loadPrgModel(dir, { threads: 1 });
    try {
      const n = 2;
      const images = { data: ref.image.data as Float32Array, n };
      // The served path runs the encoder first: features of the images = features of the latents.
      const f = await model.features(images, { t: 0.5 });
      const g = await model.latentFeatures(
        { data: ref.latent.data as Float32Array, n },
        { t: 0.5 },
      );
      expect(maxAbsDiff(f.data, g.data)).toBeLessThan(1e-4);
      const c = await model.classify(images, { ood: ['msp'] });
      expect(c.probabilities).toHaveLength(n * 3);
      expect(c.ood?.msp).toHaveLength(n);
      // A latent-sized batch is not an image batch.
      await expect(model.classify({ data: ref.latent.data as Float32Array, n })).rejects.toThrow(
        /values for n=2 images of 3×64×64/,
      );
      const traj = await model.trajectory(
        (ref.image.data as Float32Array).subarray(0, 3 * 64 * 64),
        { frames: 3 },
      );
      expect(traj.shape).toEqual([3, 3, 64, 64]);
      // Frame 0 is the decoded latent of the image (the decoder's reference output).
      const frame0 = traj.data.subarray(0, 3 * 64 * 64);
      const want = (ref.decoded?.data as Float32Array).subarray(0, 3 * 64 * 64);
      expect(maxAbsDiff(frame0, want)).toBeLessThan(1e-4);
    } finally {
      await model.release();
    }
  });

  it('without --decoder the trajectory returns the latent frames (frame 0 = the encoder output)', async () => {
    const { dir } = await latentModel('enc-only');
    const r = await run([
      'import',
      'vae',
      '--model-dir',
      dir,
      '--checkpoint',
      VAE,
      '--groups',
      '8',
    ]);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/stage added: images 3×64×64 → latents 4×16×16/);
    expect(r.out).toMatch(/not verified/);
    const loaded = await readModelDir(dir);
    expect(loaded.decoder).toBeUndefined();
    expect(loaded.manifest.files.decoder).toBeUndefined();
    const model = await loadPrgModel(dir, { threads: 1 });
    try {
      const img = Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i / 50) * 0.8);
      const traj = await model.trajectory(img, { frames: 2 });
      expect(traj.shape).toEqual([2, 4, 16, 16]);
      const lat = await runGraph(loaded.encoder!, {
        image: { dtype: 'float32', dims: [1, 3, 64, 64], data: img },
      });
      expect(Array.from(traj.data.subarray(0, 4 * 16 * 16))).toEqual(
        Array.from(lat.latent.data as Float32Array),
      );
    } finally {
      await model.release();
    }
  });

  it('refuses a model whose latent does not fit, a wrong reference, and writes nothing', async () => {
    const { dir } = await createTinyModel(join(root, 'grey'), { inputShape: [1, 8, 8] });
    const before = await fs.readdir(dir);
    const a = await run([
      'import',
      'vae',
      '--model-dir',
      dir,
      '--checkpoint',
      VAE,
      '--groups',
      '8',
    ]);
    expect(a.code).toBe(1);
    expect(a.err).toMatch(/takes 1×8×8 inputs, the VAE at 32×32 gives 4×8×8 latents/);
    const { dir: d2 } = await latentModel('bad-ref');
    const b = await run([
      'import',
      'vae',
      '--model-dir',
      d2,
      '--checkpoint',
      VAE,
      '--groups',
      '4',
      '--verify',
      REF,
    ]);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/max abs difference .* exceeds the tolerance 0\.0001 .*nothing written/);
    expect((await readModelDir(d2)).manifest.preprocess).toBeUndefined();
    expect(await fs.readdir(dir)).toEqual(before);
    const u = await run(['import', 'vae', '--checkpoint', VAE]);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/--model-dir/);
  });

  it('fine-tunes with the encoder frozen; the stage is written unchanged', async () => {
    const { dir } = await latentModel('ft-base');
    expect(
      (
        await run([
          'import',
          'vae',
          '--model-dir',
          dir,
          '--checkpoint',
          VAE,
          '--groups',
          '8',
          '--decoder',
        ])
      ).code,
    ).toBe(0);
    const base = await readModelDir(dir);
    const data = tinyDataset({ n: 8, classes: 2, shape: [3, 64, 64], seed: 5 });
    data.classes = ['0', '1'];
    const r = await runFineTune({
      baseModelDir: dir,
      dataset: 'tiny-rgb',
      data,
      evalData: data,
      hyperparameters: {
        epochs: 2,
        batchSize: 4,
        learningRate: 1e-2,
        warmupEpochs: 0,
        lambdaFlow: 0.5,
      },
      outputDir: join(root, 'ft-out'),
      name: 'ft',
      version: '1',
      checkpointDir: join(root, 'ft.ckpt'),
      threads: 1,
    });
    expect(r.steps).toBe(4);
    const out = await readModelDir(r.modelDir);
    expect(out.manifest.preprocess).toEqual(base.manifest.preprocess);
    expect(out.manifest.metrics.accuracy).toBeUndefined();
    for (const which of ['encoder', 'decoder'] as const)
      for (const [k, t] of base[which]!.initializers)
        expect(out[which]!.initializers.get(k)!.data, `${which} ${k}`).toEqual(t.data);
    // The flow changed (it was trained on latents), so the step did reach it.
    let moved = 0;
    for (const [k, t] of base.velocity.initializers) {
      const a = t.data as Float32Array;
      const b = out.velocity.initializers.get(k)!.data as Float32Array;
      if (t.dtype === 'float32')
        for (let i = 0; i < a.length; i++) moved = Math.max(moved, Math.abs(a[i] - b[i]));
    }
    expect(moved).toBeGreaterThan(0);
  });

  it("caches each image's latent once when unaugmented", async () => {
    const loaded = await readModelDir(join(root, 'ft-base'));
    const enc = new FrozenEncoder(loaded.encoder!, { threads: 1 }, true);
    try {
      const x = Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.cos(i / 30) * 0.7);
      const a = await enc.encode(x, 2, Int32Array.from([7, 9]));
      const b = await enc.encode(x.slice().reverse(), 2, Int32Array.from([7, 9]));
      expect(Array.from(b)).toEqual(Array.from(a));
      expect([enc.hits, enc.misses]).toEqual([2, 2]);
      const ref = await runGraph(loaded.encoder!, {
        image: { dtype: 'float32', dims: [2, 3, 64, 64], data: x },
      });
      expect(Array.from(a)).toEqual(Array.from(ref.latent.data as Float32Array));
    } finally {
      await enc.release();
    }
  });
});
