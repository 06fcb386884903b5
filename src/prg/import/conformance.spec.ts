/**
 * Conformance of imported nets with the upstream reference implementations. The fixtures in
 * test/fixtures/import were made by scripts/fixtures/make-import-fixtures.py, which runs the
 * upstream forward passes (SiT models.py; torchcfm UNetModelWrapper) with every parameter
 * randomised, under PyTorch 1.13 (tag torch1) and 2.13 (torch2).
 *
 * Tolerance 1e-4 absolute: both sides compute in float32; outputs are O(1) (max |v| is printed
 * beside the difference), and the sums in attention, GroupNorm and 3×3 convs over ≤ 2 304 terms
 * reorder differently in ORT and PyTorch, which costs a few ulps per layer (≈1e-6 here).
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../../engine/checkpoints';
import { hashedWeights } from './testing/hashed-weights';
import { importNet } from './plan';
import { planSit } from './sit';
import {
  TORCHCFM_CIFAR10,
  planTorchcfmUNet,
  torchcfmConfig,
  torchcfmKeyMap,
} from './torchcfm-unet';
import { buildUNet } from '../nets/unet';
import { readReference, verifyVelocity } from './verify';

const FIX = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'import');
const TOL = 1e-4;
const SIT_PREFER = ['ema', 'model', 'state_dict'];

describe('SiT (tiny: 4×8×8, patch 2, hidden 32, depth 2, 4 heads, learn_sigma, 10 classes)', () => {
  const cases = [
    ['sit-tiny.torch1.pt', 'torch1', 'PyTorch 1.13 {model, ema, opt, args}, float32'],
    ['sit-tiny.torch2.pt', 'torch2', 'PyTorch 2.13 state_dict, bfloat16'],
    ['sit-tiny.safetensors', 'torch2', 'safetensors, float32'],
  ] as const;
  it.each(cases)('%s (%s reference; %s) matches unconditionally', async (file, tag) => {
    const imp = await importNet(join(FIX, file), SIT_PREFER, (sd, root) =>
      planSit(sd, root, file, { path: 'linear', heads: 4 }),
    );
    expect(imp.report.missing).toEqual([]);
    expect(imp.report.unmapped).toEqual([]);
    expect(imp.provenance.upstream.learnSigma).toBe(true);
    const r = await verifyVelocity(
      imp.velocity,
      await readReference(join(FIX, `sit-tiny.${tag}.ref.safetensors`)),
    );
    console.log(
      `${file}: max |Δv| ${r.maxAbsDiff.toExponential(2)} (max |v| ${r.maxAbsRef.toFixed(3)})`,
    );
    expect(r.maxAbsRef).toBeGreaterThan(0.1);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(TOL);
  });

  it('class-conditional (int64 y input) matches the reference with labels', async () => {
    const imp = await importNet(join(FIX, 'sit-tiny.torch1.pt'), SIT_PREFER, (sd, root) =>
      planSit(sd, root, 'sit-tiny.torch1.pt', { path: 'linear', heads: 4, classConditional: true }),
    );
    const ref = await readReference(join(FIX, 'sit-tiny.torch1.ref-cond.safetensors'));
    const r = await verifyVelocity(imp.velocity, ref);
    console.log(`SiT class-conditional: max |Δv| ${r.maxAbsDiff.toExponential(2)}`);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(TOL);
  });

  it('picks the EMA weights of a training checkpoint (the model weights give other outputs)', async () => {
    const ref = await readReference(join(FIX, 'sit-tiny.torch1.ref.safetensors'));
    const imp = await importNet(join(FIX, 'sit-tiny.torch1.pt'), ['model'], (sd, root) =>
      planSit(sd, root, 'x.pt', { path: 'linear', heads: 4 }),
    );
    expect(imp.provenance.source.stateDict).toBe('model');
    expect((await verifyVelocity(imp.velocity, ref)).maxAbsDiff).toBeGreaterThan(1e-2);
  });
});

describe('torchcfm UNetModelWrapper, CIFAR-10 configuration at width 32 (2.2 M parameters)', () => {
  it('matches the reference (float16 checkpoint, ema_model with module. prefix)', async () => {
    const opts = { ...TORCHCFM_CIFAR10, numChannels: 32, numHeadChannels: 16 };
    const file = join(FIX, 'torchcfm-unet-w32.torch2.pt');
    const imp = await importNet(file, ['ema_model', 'net_model'], (sd) =>
      planTorchcfmUNet(sd, opts),
    );
    expect(imp.provenance.source.stateDict).toBe('ema_model (module. stripped)');
    const r = await verifyVelocity(
      imp.velocity,
      await readReference(join(FIX, 'torchcfm-unet-w32.torch2.ref.safetensors')),
    );
    console.log(
      `torchcfm U-Net w32: max |Δv| ${r.maxAbsDiff.toExponential(2)} (max |v| ${r.maxAbsRef.toFixed(3)}), ${imp.plan.net.params} params`,
    );
    expect(r.maxAbsRef).toBeGreaterThan(0.1);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(TOL);
  });
});

describe('torchcfm UNetModelWrapper, full-size CIFAR-10 configuration (35.7 M parameters)', () => {
  it('matches the reference with weights regenerated from the key hash', async () => {
    // The checkpoint is rebuilt here (upstream key names, hashed values) and read back through
    // the safetensors reader and the importer, exactly like a downloaded file.
    const cfg = torchcfmConfig(TORCHCFM_CIFAR10);
    const ours = buildUNet(cfg, { placeholders: true }).graph.initializers;
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, src] of torchcfmKeyMap(cfg)) {
      const dims = (ours.get(name) as { dims: number[] }).dims;
      tensors.set(src.key, { shape: dims, data: hashedWeights(src.key, dims) });
    }
    const dir = await fs.mkdtemp(join(tmpdir(), 'prg-cfm-full-'));
    try {
      const file = join(dir, 'full.safetensors');
      await fs.writeFile(file, encodeSafetensors(tensors));
      tensors.clear();
      const imp = await importNet(file, ['ema_model'], (sd) =>
        planTorchcfmUNet(sd, TORCHCFM_CIFAR10),
      );
      expect(imp.plan.net.params).toBe(35_746_307);
      const ref = await readReference(join(FIX, 'torchcfm-unet-full.torch2.ref.safetensors'));
      const r = await verifyVelocity(imp.velocity, ref);
      console.log(
        `torchcfm U-Net full size: max |Δv| ${r.maxAbsDiff.toExponential(2)} (max |v| ${r.maxAbsRef.toFixed(3)})`,
      );
      expect(r.maxAbsRef).toBeGreaterThan(0.1);
      expect(r.maxAbsDiff).toBeLessThanOrEqual(TOL);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
