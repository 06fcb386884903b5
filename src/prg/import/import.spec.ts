/**
 * `prg import` end to end: the written directory loads like any model (classify, features), the
 * manifest records the source and the mapping, and every refusal names its reason.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main';
import { runCommand } from '../../cli/testing/run-command';
import { fileRefOf, isInMemory } from '../../engine/onnx/model-file';
import { loadPrgModel } from '../inference';
import { ImportProvenance } from '../manifest';
import { readModelDir } from '../model-dir/io';
import { sha256File } from './plan';

const FIX = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'import');
let root: string;

const run = (args: string[]) => runCommand(main, args);

const exists = (p: string) =>
  fs.stat(p).then(
    () => true,
    () => false,
  );

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-import-'));
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

const UNET = ['--num-channels', '32', '--num-head-channels', '16'];

describe('prg import torchcfm-unet', () => {
  it('writes a model directory that loads and classifies, with the import recorded', async () => {
    const ckpt = join(FIX, 'torchcfm-unet-w32.torch2.pt');
    const out = join(root, 'cfm');
    const r = await run([
      'import',
      'torchcfm-unet',
      '--checkpoint',
      ckpt,
      ...UNET,
      '--out',
      out,
      '--verify',
      join(FIX, 'torchcfm-unet-w32.torch2.ref.safetensors'),
      '--json',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out) as { verify: { maxAbsDiff: number }; mapped: number };
    expect(summary.verify.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(summary.mapped).toBe(304);

    const dir = await readModelDir(out);
    const imp = dir.manifest.provenance.import as ImportProvenance;
    expect(imp.source.sha256).toBe(await sha256File(ckpt));
    expect(imp.source.stateDict).toBe('ema_model (module. stripped)');
    expect(imp.mapping['down.1.attn.0.qkv.weight']).toBe('input_blocks.4.1.qkv.weight');
    expect(imp.mapping['up.1.upsample.weight']).toBe('output_blocks.8.2.conv.weight');
    expect(imp.convention.transform).toBe('v(x, t) = -v_upstream(x, 1 - t)');
    expect(dir.manifest.classes).toHaveLength(10);
    expect(dir.manifest.input).toMatchObject({ channels: 3, height: 32, width: 32 });

    const model = await loadPrgModel(out, { threads: 1 });
    try {
      const n = 2;
      const x = Float32Array.from({ length: n * 3 * 32 * 32 }, (_, i) => Math.sin(i) * 0.9);
      const c = await model.classify({ data: x, n });
      expect(c.probabilities).toHaveLength(n * 10);
      for (let i = 0; i < n; i++) {
        const s = c.probabilities.slice(10 * i, 10 * i + 10).reduce((a, b) => a + b, 0);
        expect(s).toBeCloseTo(1, 5);
      }
      const f = await model.features({ data: x, n }, { t: 0.5 });
      expect(f.data.every(Number.isFinite)).toBe(true);
    } finally {
      await model.release();
    }
  });

  it('names every key that does not fit a wrongly declared architecture', async () => {
    const r = await run([
      'import',
      'torchcfm-unet',
      '--checkpoint',
      join(FIX, 'torchcfm-unet-w32.torch2.pt'),
      '--num-channels',
      '64',
      '--num-head-channels',
      '16',
      '--out',
      join(root, 'wrong'),
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/mis-shaped: time_embed\.0\.weight is \[128,32\], expected \[256,64\]/);
    expect(await exists(join(root, 'wrong'))).toBe(false);
    const r2 = await run([
      'import',
      'torchcfm-unet',
      '--checkpoint',
      join(FIX, 'torchcfm-unet-w32.torch2.pt'),
      ...UNET,
      '--num-res-blocks',
      '1',
      '--out',
      join(root, 'wrong2'),
    ]);
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/unmapped \(pass --allow-unmapped to ignore\): .*input_blocks\.\d+\./);
  });
});

describe('prg import sit', () => {
  const sit = (file: string, ...extra: string[]) => [
    'import',
    'sit',
    '--checkpoint',
    file,
    '--path',
    'linear',
    '--heads',
    '4',
    '--classes',
    'a,b',
    ...extra,
  ];

  it('writes a directory whose graph passes the reference; a failing --verify writes nothing', async () => {
    const ref = join(FIX, 'sit-tiny.torch1.ref.safetensors');
    const ok = await run(
      sit(join(FIX, 'sit-tiny.torch1.pt'), '--out', join(root, 's'), '--verify', ref),
    );
    expect(ok.err).toBe('');
    expect(ok.out).toMatch(
      /verify sit-tiny\.torch1\.ref\.safetensors: max abs difference \d\.\d+e-\d+ over 3 inputs/,
    );
    const dir = await readModelDir(join(root, 's'));
    expect(dir.manifest.interpolant).toBe('icfm');
    expect((dir.manifest.provenance.import as ImportProvenance).verify?.maxAbsDiff).toBeLessThan(
      1e-4,
    );
    // Label 3 instead of the null class: a different (conditional) field, so the check fails.
    const bad = await run(
      sit(
        join(FIX, 'sit-tiny.torch1.pt'),
        '--label',
        '3',
        '--out',
        join(root, 's3'),
        '--verify',
        ref,
      ),
    );
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(
      /max abs difference .* exceeds the tolerance 0\.0001 .*nothing written/,
    );
    expect(await exists(join(root, 's3'))).toBe(false);
  });

  it('past the external-data threshold writes velocity.onnx.data, served like the inline net', async () => {
    // SiT-XL/2 crosses the 1 GiB default; the tiny SiT crosses a threshold of 1 KiB the same way.
    const ckpt = join(FIX, 'sit-tiny.safetensors');
    const inline = await run(sit(ckpt, '--out', join(root, 'si'), '--json'));
    const ext = await run(
      sit(ckpt, '--out', join(root, 'se'), '--external-data-above', '1024', '--json'),
    );
    expect(ext.err).toBe('');
    expect(JSON.parse(inline.out).files.velocityData).toBeUndefined();
    expect(JSON.parse(ext.out).files.velocityData).toBe('velocity.onnx.data');
    expect(await exists(join(root, 'se', 'velocity.onnx.data'))).toBe(true);
    const x = Float32Array.from({ length: 2 * 4 * 8 * 8 }, (_, i) => Math.cos(i) * 0.8);
    const feats = async (dir: string) => {
      const model = await loadPrgModel(dir, { threads: 1 });
      try {
        const f = (await model.features({ data: x, n: 2 }, { t: 0.5, steps: 2 })).data;
        const byRef = [...model.velocity.initializers.values()].filter((t) => fileRefOf(t));
        // Served from the file: ORT read the weights, JS never did.
        return { f, onDisk: byRef.filter((t) => !isInMemory(t)).length, byRef: byRef.length };
      } finally {
        await model.release();
      }
    };
    const a = await feats(join(root, 'se'));
    const b = await feats(join(root, 'si'));
    // Float32 rounding apart (with PRG_ORT_PREPACK=0 mapped weights run unpacked, session.ts).
    expect(a.f.length).toBe(b.f.length);
    expect(Math.max(...a.f.map((v, i) => Math.abs(v - b.f[i])))).toBeLessThan(1e-5);
    expect(a.byRef).toBeGreaterThan(10);
    expect(a.onDisk).toBe(a.byRef);
    expect(b.byRef).toBe(0);
  });

  it('refuses a DiT checkpoint unless forced, and a --config that the file contradicts', async () => {
    const dit = join(root, 'DiT-tiny-2.safetensors');
    await fs.copyFile(join(FIX, 'sit-tiny.safetensors'), dit);
    const r = await run(sit(dit, '--out', join(root, 'd')));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/looks like a DiT checkpoint .*diffusion model.*--force/);
    expect((await run(sit(dit, '--out', join(root, 'd'), '--force'))).code).toBe(0);
    const c = await run(
      sit(join(FIX, 'sit-tiny.safetensors'), '--config', 'SiT-S/2', '--out', join(root, 'c')),
    );
    expect(c.code).toBe(1);
    expect(c.err).toMatch(
      /--config SiT-S\/2 declares depth 12, hidden 384, patch 2; the checkpoint has depth 2, hidden 32, patch 2/,
    );
  });

  it('refuses files that are not checkpoints with the reader error', async () => {
    const r = await run(sit(join(FIX, 'torchscript.torch2.pt'), '--out', join(root, 'ts')));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/torchscript\.torch2\.pt: a TorchScript archive/);
    const u = await run([
      'import',
      'sit',
      '--checkpoint',
      join(FIX, 'sit-tiny.safetensors'),
      '--classes',
      'a,b',
      '--out',
      'x',
    ]);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/--path linear\|gvp is required/);
  });
});
