/**
 * Conformance of the SD-VAE stage with diffusers' AutoencoderKL. The fixtures were made by
 * scripts/fixtures/make-vae-fixtures.py from a diffusers checkout (PyTorch 2.13.0+cpu), every
 * parameter randomised: encode(x).latent_dist.mean × 0.18215 and decode(latent / 0.18215).
 *
 * Tolerance 1e-4 absolute: both sides compute in float32 and the outputs are O(0.1–5) (the
 * largest reference value is printed beside the difference); the only differences are summation
 * order in convolutions (up to 512·9 = 4 608 terms), GroupNorm statistics over up to 64·64·16
 * values and the 1 024-token attention in ORT vs PyTorch, a few float32 ulps per layer — about
 * 1e-6 here, so 1e-4 leaves two orders of magnitude while still catching any wrong padding,
 * ε, scale or key (each of which moves the outputs by 1e-3 or more; one case is checked below).
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors, openSafetensors } from '../../engine/checkpoints';
import { hashedWeights } from './testing/hashed-weights';
import { buildVaeEncoder } from './vae';
import { importVae, readVaeReference, verifyVae } from './vae-stage';
import { KeyMappingError } from './mapping';

const FIX = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'import');
const TOL = 1e-4;
const REF = join(FIX, 'vae-small.ref.safetensors');

describe('AutoencoderKL, reduced width (32, 64, 64), 1 layer per block, 8 groups', () => {
  it.each([
    ['vae-small.safetensors', 'to_q/to_k/to_v/to_out.0', 'safetensors, float32'],
    ['vae-small.old-keys.bin', 'query/key/value/proj_attn', 'torch.save, float16'],
  ])('%s (%s keys, %s): encoder and decoder match at 64×64', async (file, keys) => {
    const vae = await importVae(join(FIX, file), { imageSize: [64, 64], groups: 8, decoder: true });
    expect(vae.provenance.upstream.attention_keys).toBe(keys);
    expect(vae.report.unmapped).toEqual([]);
    expect(vae.config.blockOutChannels).toEqual([32, 64, 64]);
    const r = await verifyVae(vae, await readVaeReference(REF));
    console.log(
      `${file}: encoder max |Δ| ${r.encoder.toExponential(2)} (max |latent| ` +
        `${r.maxAbsLatent.toFixed(3)}), decoder max |Δ| ${r.decoder?.toExponential(2)}`,
    );
    expect(r.maxAbsLatent).toBeGreaterThan(0.1);
    expect(r.encoder).toBeLessThanOrEqual(TOL);
    expect(r.decoder).toBeLessThanOrEqual(TOL);
  });

  it('encoder matches at 256×256', async () => {
    const vae = await importVae(join(FIX, 'vae-small.safetensors'), {
      imageSize: [256, 256],
      groups: 8,
    });
    const r = await verifyVae(vae, await readVaeReference(REF, '256'));
    console.log(`256×256: encoder max |Δ| ${r.encoder.toExponential(2)}`);
    expect(r.encoder).toBeLessThanOrEqual(TOL);
    expect(vae.decoder).toBeUndefined();
    expect(Object.values(vae.ignored)).toContain('decoder not imported (pass --decoder)');
  });

  it('a wrong GroupNorm count (the file cannot tell) is caught by the reference', async () => {
    const vae = await importVae(join(FIX, 'vae-small.safetensors'), {
      imageSize: [64, 64],
      groups: 4,
    });
    const r = await verifyVae(vae, await readVaeReference(REF));
    expect(r.encoder).toBeGreaterThan(1e-3);
  });

  it('names missing, mis-shaped and unmapped keys', async () => {
    const f = await openSafetensors(join(FIX, 'vae-small.safetensors'));
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    try {
      for (const [k, t] of f.tensors)
        tensors.set(k, { shape: [...t.shape], data: await t.toFloat32() });
    } finally {
      await f.close();
    }
    tensors.delete('encoder.mid_block.attentions.0.to_k.bias');
    tensors.set('encoder.conv_out.bias', { shape: [7], data: new Float32Array(7) });
    tensors.set('encoder.extra.weight', { shape: [1], data: new Float32Array(1) });
    const dir = await fs.mkdtemp(join(tmpdir(), 'prg-vae-keys-'));
    try {
      const file = join(dir, 'broken.safetensors');
      await fs.writeFile(file, encodeSafetensors(tensors));
      const err = await importVae(file, { imageSize: [64, 64], groups: 8, decoder: true }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KeyMappingError);
      const msg = (err as Error).message;
      expect(msg).toMatch(/missing: encoder\.mid_block\.attentions\.0\.to_k\.bias/);
      expect(msg).toMatch(/mis-shaped: encoder\.conv_out\.bias is \[7\], expected \[8\]/);
      expect(msg).toMatch(/unmapped \(pass --allow-unmapped to ignore\): encoder\.extra\.weight/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('SD VAE encoder, full size (128, 256, 512, 512), 34.2 M parameters, 256×256', () => {
  it('matches the reference with weights regenerated from the key hash', async () => {
    const cfg = {
      inChannels: 3,
      latentChannels: 4,
      blockOutChannels: [128, 256, 512, 512],
      layersPerBlock: 2,
      groups: 32,
      quantConv: true,
      scalingFactor: 0.18215,
      imageSize: [256, 256] as [number, number],
    };
    const enc = buildVaeEncoder(cfg, { placeholders: true });
    expect(enc.params).toBe(34_163_664);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const name of enc.paramNames) {
      const dims = (enc.graph.initializers.get(name) as { dims: number[] }).dims;
      tensors.set(name, { shape: dims, data: hashedWeights(name, dims) });
    }
    const dir = await fs.mkdtemp(join(tmpdir(), 'prg-vae-full-'));
    try {
      const file = join(dir, 'sd-vae-encoder.safetensors');
      await fs.writeFile(file, encodeSafetensors(tensors));
      tensors.clear();
      const vae = await importVae(file, { imageSize: [256, 256] });
      expect(vae.config).toEqual(cfg);
      const ref = await readVaeReference(join(FIX, 'vae-sd-full.ref.safetensors'));
      const r = await verifyVae(vae, ref);
      console.log(
        `SD VAE encoder full size: max |Δ| ${r.encoder.toExponential(2)} (max |latent| ${r.maxAbsLatent.toFixed(3)})`,
      );
      expect(r.maxAbsLatent).toBeGreaterThan(0.05);
      expect(r.encoder).toBeLessThanOrEqual(TOL);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
