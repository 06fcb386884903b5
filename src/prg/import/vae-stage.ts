/**
 * `prg import vae`: add the SD-VAE stage to an existing latent model directory. The VAE file is
 * read (safetensors or a torch.save'd state_dict), its architecture detected from the key shapes,
 * the encoder (and optionally the decoder) built and loaded by name (./vae.ts), checked against
 * the directory's latent input, optionally verified against reference outputs, and the directory
 * is rewritten atomically with the stage's graphs, `preprocess` and `provenance.vae`.
 */
import { promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { openCheckpoint, openSafetensors } from '../../engine/checkpoints';
import { Tensor } from '../../engine/onnx/types';
import { runGraph } from '../../engine/runtime/session';
import { ModelManifest, VaePreprocess, VaeProvenance } from '../manifest';
import { DEFAULT_FILES, readModelDir, writeModelDir } from '../model-dir/io';
import { sha256File } from './plan';
import { maxAbsDiff } from './verify';
import { selectStateDict } from './state-dict';
import {
  LoadedVae,
  SD_SCALING_FACTOR,
  detectVaeConfig,
  latentShape,
  loadVae,
  vaeFactor,
} from './vae';

export interface ImportVaeOptions {
  /** Image height and width the encoder takes (default: the VAE's factor × `latentSize`). */
  imageSize?: [number, number];
  /** The model's latent height and width (used when imageSize is not given; default 32×32). */
  latentSize?: [number, number];
  scalingFactor?: number;
  groups?: number;
  decoder?: boolean;
  allowUnmapped?: boolean;
}

export interface ImportedVae extends LoadedVae {
  provenance: VaeProvenance;
}

/** Read, detect, build and load the VAE; nothing is written. */
export async function importVae(file: string, o: ImportVaeOptions): Promise<ImportedVae> {
  const ckpt = await openCheckpoint(file);
  try {
    const sd = selectStateDict(ckpt.root, ['state_dict', 'model'], file);
    const cfg = detectVaeConfig(sd.tensors, {
      groups: o.groups,
      scalingFactor: o.scalingFactor ?? SD_SCALING_FACTOR,
      imageSize: [0, 0],
    });
    const f = vaeFactor(cfg);
    const [lh, lw] = o.latentSize ?? [32, 32];
    cfg.imageSize = o.imageSize ?? [lh * f, lw * f];
    const vae = await loadVae(file, sd.tensors, cfg, {
      decoder: o.decoder,
      allowUnmapped: o.allowUnmapped,
    });
    const provenance: VaeProvenance = {
      source: {
        file: basename(file),
        sha256: await sha256File(file),
        bytes: (await fs.stat(file)).size,
        format: ckpt.format,
        stateDict: sd.source,
      },
      upstream: {
        class: 'diffusers AutoencoderKL',
        block_out_channels: cfg.blockOutChannels,
        layers_per_block: cfg.layersPerBlock,
        latent_channels: cfg.latentChannels,
        in_channels: cfg.inChannels,
        norm_num_groups: cfg.groups,
        use_quant_conv: cfg.quantConv,
        scaling_factor: cfg.scalingFactor,
        attention_keys: vae.oldAttention ? 'query/key/value/proj_attn' : 'to_q/to_k/to_v/to_out.0',
        sample_size: cfg.imageSize,
        latent: 'posterior mean (no sampling) × scaling_factor',
      },
      mapping: vae.mapping,
      ignored: vae.ignored,
      params: vae.params,
    };
    return { ...vae, provenance };
  } finally {
    await ckpt.close();
  }
}

export interface VaeReference {
  image: Tensor;
  latent: Tensor;
  decoded?: Tensor;
}

/**
 * A VAE reference file (scripts/fixtures/make-vae-fixtures.py): `image_u8` pixels (x = p / 127.5
 * − 1, as the server's decoder maps them) or a float `image`, the reference `latent`, and
 * optionally `decoded` (the decoder run on that latent). `suffix` picks e.g. the 256×256 set.
 */
export async function readVaeReference(path: string, suffix = ''): Promise<VaeReference> {
  const f = await openSafetensors(path);
  try {
    const get = async (name: string): Promise<Tensor | undefined> => {
      const s = f.tensors.get(name);
      if (!s) return undefined;
      return { dtype: 'float32', dims: [...s.shape], data: await s.toFloat32() };
    };
    const u8 = await get(`image${suffix}_u8`);
    if (u8) u8.data = Float32Array.from(u8.data as Float32Array, (p) => p / 127.5 - 1);
    const image = u8 ?? (await get(`image${suffix}`));
    const latent = await get(`latent${suffix}`);
    if (!image || !latent)
      throw new Error(`${path}: a VAE reference needs image${suffix}(_u8) and latent${suffix}`);
    return { image, latent, decoded: await get(`decoded${suffix}`) };
  } finally {
    await f.close();
  }
}

export interface VaeVerifyResult {
  encoder: number;
  decoder?: number;
  maxAbsLatent: number;
  n: number;
}

export async function verifyVae(vae: LoadedVae, ref: VaeReference): Promise<VaeVerifyResult> {
  const [, c, h, w] = ref.image.dims;
  const want = latentShape({ ...vae.config, imageSize: [h, w] });
  if (c !== vae.config.inChannels || ref.latent.dims.slice(1).join() !== want.join())
    throw new Error(
      `reference image [${ref.image.dims}] / latent [${ref.latent.dims}] do not fit the VAE`,
    );
  if (vae.config.imageSize.join() !== [h, w].join())
    throw new Error(
      `reference at ${h}×${w}, the stage takes ${vae.config.imageSize.join('×')}; ` +
        `import with --image-size ${h},${w}`,
    );
  const lat = (await runGraph(vae.encoder, { image: ref.image })).latent.data as Float32Array;
  const ref32 = ref.latent.data as Float32Array;
  const res: VaeVerifyResult = {
    encoder: maxAbsDiff(lat, ref32),
    maxAbsLatent: ref32.reduce((m, v) => Math.max(m, Math.abs(v)), 0),
    n: ref.image.dims[0],
  };
  if (vae.decoder && ref.decoded) {
    const img = (await runGraph(vae.decoder, { latent: ref.latent })).image.data as Float32Array;
    res.decoder = maxAbsDiff(img, ref.decoded.data as Float32Array);
  }
  return res;
}

/**
 * Write the stage into the model directory (atomically, through writeModelDir). The directory's
 * input must be the VAE's latent at the chosen image size.
 */
export async function addVaeStage(
  dir: string,
  vae: ImportedVae,
  verify?: { file: string; result: VaeVerifyResult; tolerance: number },
): Promise<ModelManifest> {
  const loaded = await readModelDir(dir);
  const m = loaded.manifest;
  const lat = latentShape(vae.config);
  const have = [m.input.channels, m.input.height, m.input.width];
  if (have.join() !== lat.join())
    throw new Error(
      `${dir}: the model takes ${have.join('×')} inputs, the VAE at ` +
        `${vae.config.imageSize.join('×')} gives ${lat.join('×')} latents (pass --image-size)`,
    );
  const preprocess: VaePreprocess = {
    kind: 'vae',
    image: {
      channels: vae.config.inChannels,
      height: vae.config.imageSize[0],
      width: vae.config.imageSize[1],
      normalization: 'minus-one-one',
    },
    scalingFactor: vae.config.scalingFactor,
  };
  const files = { ...m.files, encoder: DEFAULT_FILES.encoder };
  delete files.decoder;
  if (vae.decoder) files.decoder = DEFAULT_FILES.decoder;
  const prov: VaeProvenance = { ...vae.provenance };
  if (verify)
    prov.verify = {
      file: basename(verify.file),
      sha256: await sha256File(verify.file),
      tolerance: verify.tolerance,
      ...verify.result,
    };
  const manifest: ModelManifest = {
    ...m,
    preprocess,
    files,
    provenance: { ...m.provenance, vae: prov },
  };
  await writeModelDir(
    dir,
    {
      manifest,
      velocity: loaded.velocity,
      head: loaded.head,
      ood: loaded.ood,
      encoder: vae.encoder,
      decoder: vae.decoder,
    },
    { overwrite: true },
  );
  return manifest;
}
