/**
 * The SD-VAE stage of latent models: diffusers' `AutoencoderKL` (src/diffusers/models/
 * autoencoders/{autoencoder_kl,vae}.py, the layout of `stabilityai/sd-vae-ft-*`) rebuilt here
 * from the architecture with this project's graph builder, weights mapped by name.
 *
 * Encoder: conv_in → per level `layersPerBlock` ResnetBlock2D (GroupNorm ε 1e-6 → SiLU → 3×3
 * conv, twice; 1×1 conv shortcut when the width changes) and, except on the last level, a
 * stride-2 3×3 conv on the input padded by (0, 1, 0, 1) (right and bottom only: diffusers'
 * `Downsample2D(padding=0)`) → mid block (resnet, single-head self-attention over H·W with
 * GroupNorm and a residual, resnet) → GroupNorm → SiLU → conv_out (2·z channels) → quant_conv
 * (1×1). The posterior's mean (the first z channels; no sampling, so the stage is
 * deterministic) times the scaling factor (0.18215 for SD's VAE) is the latent the flow sees.
 *
 * Decoder: latent / scaling factor → post_quant_conv → conv_in → mid block → per level
 * `layersPerBlock + 1` resnets and, except on the last level, nearest ×2 then a 3×3 conv →
 * GroupNorm → SiLU → conv_out; the image comes out in [−1, 1] (not clamped).
 *
 * Our parameter names are diffusers' current ones; files written before diffusers renamed the
 * mid-block attention (`query/key/value/proj_attn`) are read through those old names.
 */
import { StoredTensor } from '../../engine/checkpoints';
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { Graph } from '../../engine/onnx/types';
import { ParamInit, Params, attention } from '../nets/layers';
import { KeyMap, KeyMappingError, MappingReport, checkMapping, loadMapped } from './mapping';

/** GroupNorm ε of every norm in AutoencoderKL's encoder and decoder. */
export const VAE_EPS = 1e-6;
/** Stable Diffusion's latent scaling factor (AutoencoderKL's default `scaling_factor`). */
export const SD_SCALING_FACTOR = 0.18215;

export interface VaeConfig {
  inChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  /** GroupNorm groups (not stored in the file; SD's VAE uses 32). */
  groups: number;
  /** 1×1 quant_conv / post_quant_conv present (`use_quant_conv`, true for SD). */
  quantConv: boolean;
  scalingFactor: number;
  /** Image height and width the encoder takes (the latent is 1 / 2^(levels−1) of it). */
  imageSize: [number, number];
}

/** Downsampling factor image → latent. */
export function vaeFactor(cfg: Pick<VaeConfig, 'blockOutChannels'>): number {
  return 2 ** (cfg.blockOutChannels.length - 1);
}

export function latentShape(cfg: VaeConfig): [number, number, number] {
  const f = vaeFactor(cfg);
  const [h, w] = cfg.imageSize;
  if (h % f || w % f)
    throw new Error(`VAE: image ${h}×${w} is not divisible by the downsampling factor ${f}`);
  return [cfg.latentChannels, h / f, w / f];
}

function groupNorm(p: Params, name: string, x: Value, groups: number): Value {
  const c = x.shape[1] as number;
  const g = p.fill(`${name}.weight`, [c], 1);
  const beta = p.fill(`${name}.bias`, [c], 0);
  return p.b.groupNorm(x, groups, g, beta, VAE_EPS);
}

/** nn.Conv2d with PyTorch's default init; `pads` in ONNX order (top, left, bottom, right). */
function conv(
  p: Params,
  name: string,
  x: Value,
  outC: number,
  k: number,
  o: { stride?: number; pads?: number[] } = {},
): Value {
  const inC = x.shape[1] as number;
  const bound = 1 / Math.sqrt(inC * k * k);
  const w = p.uniform(`${name}.weight`, [outC, inC, k, k], bound);
  const bias = p.uniform(`${name}.bias`, [outC], bound);
  const pad = (k - 1) / 2;
  const s = o.stride ?? 1;
  return p.b.conv(x, w, bias, { strides: [s, s], pads: o.pads ?? [pad, pad, pad, pad] });
}

/** ResnetBlock2D without a time embedding (temb_channels=None), output_scale_factor 1. */
function resnet(p: Params, name: string, x: Value, outC: number, groups: number): Value {
  const b = p.b;
  const inC = x.shape[1] as number;
  let h = conv(p, `${name}.conv1`, b.silu(groupNorm(p, `${name}.norm1`, x, groups)), outC, 3);
  h = conv(p, `${name}.conv2`, b.silu(groupNorm(p, `${name}.norm2`, h, groups)), outC, 3);
  const skip = inC === outC ? x : conv(p, `${name}.conv_shortcut`, x, outC, 1);
  return b.add(skip, h);
}

/**
 * The mid block's Attention (heads = 1, dim_head = C): GroupNorm over [B, C, H·W], q/k/v and
 * to_out.0 as Linear(C, C), softmax(q·kᵀ/√C)·v, residual added, rescale 1.
 */
function attentionBlock(p: Params, name: string, x: Value, groups: number): Value {
  const b = p.b;
  const [, c, h, w] = x.shape as [unknown, number, number, number];
  const lin = (n: string, v: Value) => {
    const bound = 1 / Math.sqrt(c);
    return b.linear(
      v,
      p.uniform(`${name}.${n}.weight`, [c, c], bound),
      p.uniform(`${name}.${n}.bias`, [c], bound),
    );
  };
  const seq = b.transpose(
    b.reshape(groupNorm(p, `${name}.group_norm`, x, groups), [0, c, h * w]),
    [0, 2, 1],
  ); // [B, HW, C]
  const heads = (v: Value) => b.unsqueeze(v, [1]); // [B, 1, HW, C]
  const q = heads(lin('to_q', seq));
  const k = heads(lin('to_k', seq));
  const v = heads(lin('to_v', seq));
  const a = b.squeeze(attention(b, q, k, v, c), [1]);
  const out = lin('to_out.0', a); // [B, HW, C]
  return b.add(x, b.reshape(b.transpose(out, [0, 2, 1]), [0, c, h, w]));
}

function midBlock(p: Params, name: string, x: Value, groups: number): Value {
  const c = x.shape[1] as number;
  let h = resnet(p, `${name}.resnets.0`, x, c, groups);
  h = attentionBlock(p, `${name}.attentions.0`, h, groups);
  return resnet(p, `${name}.resnets.1`, h, c, groups);
}

export interface BuiltStage {
  graph: Graph;
  params: number;
  paramNames: string[];
}

function finish(b: GraphBuilder, p: Params, metadata: Record<string, string>): BuiltStage {
  b.metadata = metadata;
  return { graph: b.build(), params: p.count, paramNames: [...p.names] };
}

/** Encoder graph: `image` [N, C, H, W] in [−1, 1] → `latent` [N, z, H/f, W/f] = mean · s. */
export function buildVaeEncoder(cfg: VaeConfig, init: ParamInit = {}): BuiltStage {
  const b = new GraphBuilder('vae_encoder');
  const p = new Params(b, 0, init);
  const [H, W] = cfg.imageSize;
  latentShape(cfg);
  const ch = cfg.blockOutChannels;
  let x = conv(p, 'encoder.conv_in', b.input('image', ['N', cfg.inChannels, H, W]), ch[0], 3);
  ch.forEach((out, i) => {
    for (let j = 0; j < cfg.layersPerBlock; j++)
      x = resnet(p, `encoder.down_blocks.${i}.resnets.${j}`, x, out, cfg.groups);
    if (i < ch.length - 1)
      // Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then a stride-2 conv without padding,
      // i.e. one extra zero row and column at the bottom and right only.
      x = conv(p, `encoder.down_blocks.${i}.downsamplers.0.conv`, x, out, 3, {
        stride: 2,
        pads: [0, 0, 1, 1],
      });
  });
  x = midBlock(p, 'encoder.mid_block', x, cfg.groups);
  x = b.silu(groupNorm(p, 'encoder.conv_norm_out', x, cfg.groups));
  const z = cfg.latentChannels;
  x = conv(p, 'encoder.conv_out', x, 2 * z, 3);
  if (cfg.quantConv) x = conv(p, 'quant_conv', x, 2 * z, 1);
  // The posterior's mean (channels [0, z); the rest is its log-variance), scaled.
  const mean = b.slice(x, [0], [z], [1]);
  b.output(b.mul(mean, cfg.scalingFactor), 'latent');
  return finish(b, p, { 'prg.stage': 'vae-encoder', 'prg.scaling_factor': `${cfg.scalingFactor}` });
}

/** Decoder graph: `latent` [N, z, h, w] (scaled) → `image` [N, C, h·f, w·f] in about [−1, 1]. */
export function buildVaeDecoder(cfg: VaeConfig, init: ParamInit = {}): BuiltStage {
  const b = new GraphBuilder('vae_decoder');
  const p = new Params(b, 0, init);
  const [z, h, w] = latentShape(cfg);
  let x = b.mul(b.input('latent', ['N', z, h, w]), 1 / cfg.scalingFactor);
  if (cfg.quantConv) x = conv(p, 'post_quant_conv', x, z, 1);
  const rev = [...cfg.blockOutChannels].reverse();
  x = conv(p, 'decoder.conv_in', x, rev[0], 3);
  x = midBlock(p, 'decoder.mid_block', x, cfg.groups);
  rev.forEach((out, i) => {
    for (let j = 0; j <= cfg.layersPerBlock; j++)
      x = resnet(p, `decoder.up_blocks.${i}.resnets.${j}`, x, out, cfg.groups);
    if (i < rev.length - 1)
      x = conv(
        p,
        `decoder.up_blocks.${i}.upsamplers.0.conv`,
        b.resizeNearest(x, [1, 1, 2, 2]),
        out,
        3,
      );
  });
  x = b.silu(groupNorm(p, 'decoder.conv_norm_out', x, cfg.groups));
  b.output(conv(p, 'decoder.conv_out', x, cfg.inChannels, 3), 'image');
  return finish(b, p, { 'prg.stage': 'vae-decoder', 'prg.scaling_factor': `${cfg.scalingFactor}` });
}

const ATTN_OLD: Record<string, string> = {
  to_q: 'query',
  to_k: 'key',
  to_v: 'value',
  'to_out.0': 'proj_attn',
};

/**
 * Our names are diffusers' current names; with `oldAttention` the mid-block attention is read
 * from the pre-0.15 names (query/key/value/proj_attn), as diffusers' own loader converts them.
 */
export function vaeKeyMap(paramNames: readonly string[], oldAttention: boolean): KeyMap {
  const map: KeyMap = new Map();
  for (const name of paramNames) {
    let key = name;
    if (oldAttention) {
      const m = /^(.*\.attentions\.0)\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(name);
      if (m) key = `${m[1]}.${ATTN_OLD[m[2]]}.${m[3]}`;
    }
    map.set(name, { key });
  }
  return map;
}

export interface VaeDetectOptions {
  groups?: number;
  scalingFactor?: number;
  imageSize: [number, number];
}

/**
 * The architecture from the key shapes: widths from each level's first conv, depth from the
 * resnet indices, latent channels from conv_out; the group count is not in the file.
 */
export function detectVaeConfig(sd: Map<string, StoredTensor>, o: VaeDetectOptions): VaeConfig {
  const shape = (k: string) => {
    const t = sd.get(k);
    if (!t)
      throw new Error(
        `no key ${k}: not a diffusers AutoencoderKL state_dict (first keys: ` +
          `${[...sd.keys()].slice(0, 5).join(', ')})`,
      );
    return t.shape;
  };
  const [c0, inChannels] = shape('encoder.conv_in.weight');
  const blockOutChannels: number[] = [];
  for (let i = 0; sd.has(`encoder.down_blocks.${i}.resnets.0.conv1.weight`); i++)
    blockOutChannels.push(shape(`encoder.down_blocks.${i}.resnets.0.conv1.weight`)[0]);
  if (!blockOutChannels.length || blockOutChannels[0] !== c0)
    throw new Error('encoder.down_blocks.0 is missing or does not follow encoder.conv_in');
  let layersPerBlock = 0;
  while (sd.has(`encoder.down_blocks.0.resnets.${layersPerBlock}.conv1.weight`)) layersPerBlock++;
  const latentChannels = shape('encoder.conv_out.weight')[0] / 2;
  if (!Number.isInteger(latentChannels))
    throw new Error(`encoder.conv_out has ${2 * latentChannels} channels: expected 2·z (double_z)`);
  const groups = o.groups ?? 32;
  for (const c of blockOutChannels)
    if (c % groups)
      throw new Error(`width ${c} is not divisible by ${groups} groups (pass --groups)`);
  return {
    inChannels,
    latentChannels,
    blockOutChannels,
    layersPerBlock,
    groups,
    quantConv: sd.has('quant_conv.weight'),
    scalingFactor: o.scalingFactor ?? SD_SCALING_FACTOR,
    imageSize: o.imageSize,
  };
}

export interface LoadedVae {
  config: VaeConfig;
  encoder: Graph;
  decoder?: Graph;
  params: { encoder: number; decoder?: number };
  /** Our parameter name → checkpoint key, encoder and decoder together. */
  mapping: Record<string, string>;
  ignored: Record<string, string>;
  report: MappingReport;
  oldAttention: boolean;
}

/**
 * Build the encoder (and with `decoder` the decoder) and load them from the state_dict; every
 * key must be accounted for, else a KeyMappingError lists the missing, mis-shaped and unmapped
 * keys by name. Without `decoder`, the decoder's keys are recorded as deliberately ignored.
 */
export async function loadVae(
  file: string,
  sd: Map<string, StoredTensor>,
  cfg: VaeConfig,
  o: { decoder?: boolean; allowUnmapped?: boolean } = {},
): Promise<LoadedVae> {
  const oldAttention = sd.has('encoder.mid_block.attentions.0.query.weight');
  const enc = buildVaeEncoder(cfg, { placeholders: true });
  const dec = o.decoder ? buildVaeDecoder(cfg, { placeholders: true }) : undefined;
  const encMap = vaeKeyMap(enc.paramNames, oldAttention);
  const decMap = dec ? vaeKeyMap(dec.paramNames, oldAttention) : new Map();
  const ignored: Record<string, string> = {};
  if (!dec)
    for (const k of sd.keys())
      if (k.startsWith('decoder.') || k.startsWith('post_quant_conv.'))
        ignored[k] = 'decoder not imported (pass --decoder)';
  // One check over both graphs, so one error names every problem in the file.
  const er = checkMapping(enc.graph, enc.paramNames, encMap, sd, ignored);
  const dr = dec ? checkMapping(dec.graph, dec.paramNames, decMap, sd, ignored) : undefined;
  const decUnmapped = new Set(dr?.unmapped ?? er.unmapped);
  const report: MappingReport = {
    mapped: er.mapped + (dr?.mapped ?? 0),
    missing: [...er.missing, ...(dr?.missing ?? [])],
    misshaped: [...er.misshaped, ...(dr?.misshaped ?? [])],
    unmapped: er.unmapped.filter((k) => decUnmapped.has(k)),
    ignored,
  };
  if (
    report.missing.length ||
    report.misshaped.length ||
    (report.unmapped.length && !o.allowUnmapped)
  )
    throw new KeyMappingError(file, report);
  const all = { allowUnmapped: true };
  const encoder = (await loadMapped(file, enc.graph, enc.paramNames, encMap, sd, all)).graph;
  const decoder = dec
    ? (await loadMapped(file, dec.graph, dec.paramNames, decMap, sd, all)).graph
    : undefined;
  const mapping: Record<string, string> = {};
  for (const [ours, s] of [...encMap, ...decMap]) mapping[ours] = s.key;
  for (const k of report.unmapped) ignored[k] = 'unmapped (--allow-unmapped)';
  return {
    config: cfg,
    encoder,
    decoder,
    params: { encoder: enc.params, ...(dec ? { decoder: dec.params } : {}) },
    mapping,
    ignored,
    report,
    oldAttention,
  };
}
