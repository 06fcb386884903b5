/**
 * U-Net velocity net v_θ(x, t) in the improved-diffusion style (Nichol & Dhariwal 2021;
 * the PRG release uses this family, `unet_2D`, for its flow models, paper §3.1 / §4.4.1).
 *
 * Graph contract (docs/engineering.md): inputs `x` [N, C, H, W] and `t` [N], output `v` [N, C, H, W].
 *
 * Structure, for levels i = 0..L-1 with width ch_i = base·mult[i]:
 *   emb   = Linear(SiLU(Linear(sinusoidal(t)))), shared by every ResBlock (through SiLU→Linear)
 *   h     = conv3×3(x → base)
 *   down  level i: numResBlocks × [ResBlock(→ ch_i), Attention if 2^i ∈ attentionResolutions];
 *                  then (i < L-1) conv3×3 stride 2.
 *   mid   ResBlock [, Attention, ResBlock]
 *   up    level i = L-1..0: per skip, concat(h, skip) → ResBlock(→ ch_i) [→ Attention];
 *                  then (i > 0) nearest upsample ×2 cropped to the next skip's size [→ conv3×3].
 *   out   GroupNorm → SiLU → conv3×3(→ C)
 * ResBlock(in → out) = GN → SiLU → conv3×3 → (+ Linear(SiLU(emb)) per channel, or with
 * `useScaleShift` GN(h)·(1+scale)+shift before the second SiLU) → GN → SiLU → conv3×3,
 * plus a 1×1 conv skip when in ≠ out. Dropout is omitted (deterministic).
 * Skips: 'resblocks' keeps only ResBlock outputs (one per block); 'all' also keeps the input conv
 * and each downsample output as improved-diffusion does (then each up level has one more block).
 *
 * PRG-UNet-XS (28×28×1, used by the engine benchmark), exactly:
 *   time   sinusoidal(32) → Linear(32,128) → SiLU → Linear(128,128)          20 736
 *   input  conv3×3 1→32                                                        320
 *   down.0 ResBlock 32→32 @28                                               22 752
 *          conv3×3 s2 32→32 → 14                                              9 248
 *   down.1 ResBlock 32→64 @14 (1×1 skip)                                    65 984
 *          conv3×3 s2 64→64 → 7                                              36 928
 *   down.2 ResBlock 64→64 @7                                                82 368
 *   mid    ResBlock 64→64 @7                                                82 368
 *   up.2   concat(mid 64, down.2 64) → ResBlock 128→64 @7                  127 616
 *          nearest ×2 → 14 (no conv)
 *   up.1   concat(64, down.1 64) → ResBlock 128→64 @14                     127 616
 *          nearest ×2 → 28 (no conv)
 *   up.0   concat(64, down.0 32) → ResBlock 96→32 @28                       44 416
 *   out    GroupNorm(8, 32) → SiLU → conv3×3 32→1                             353
 *   total                                                                  620 705
 * (ResBlocks use GroupNorm(8); the up path of XS mirrors the down path's resolutions with plain
 * nearest upsampling, which is what lands the total at ≈0.62 M.)
 */
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { Graph } from '../../engine/onnx/types';
import {
  LinearParams,
  ParamInit,
  Params,
  applyLinear,
  assertInt,
  attention,
  conv2d,
  groupNorm,
  linearParams,
  timestepEmbedding,
} from './layers';

export interface UNetConfig {
  /** [C, H, W] of one image. */
  inputShape: [number, number, number];
  /** Output channels; defaults to C. */
  outChannels?: number;
  baseChannels: number;
  channelMult: number[];
  numResBlocks: number;
  /** Downsample factors (1 = full resolution, 2, 4...) after whose ResBlocks attention sits. */
  attentionResolutions: number[];
  numHeads: number;
  /** GroupNorm groups (every normalised channel count must be divisible by it). */
  groups: number;
  /** Width of the sinusoidal embedding of t. */
  timeEmbedDim: number;
  /** Width of the time MLP (the conditioning vector). */
  timeHiddenDim: number;
  /** t is multiplied by this before the sinusoidal embedding (1000: DDPM-like frequencies). */
  timeScale: number;
  useScaleShift: boolean;
  /** Middle = ResBlock, Attention, ResBlock (true) or a single ResBlock (false). */
  middleAttention: boolean;
  /** A 3×3 conv after each nearest upsampling (improved-diffusion conv_resample). */
  upConv: boolean;
  skips: 'resblocks' | 'all';
  /** Zero the last conv of each ResBlock, the attention projections and the output conv. */
  zeroInit: boolean;
  /** Fixed batch size; omitted = symbolic 'N'. */
  batch?: number;
  seed?: number;
}

export type UNetPresetName = 'XS' | 'S' | 'B';
export type UNetPreset = Omit<UNetConfig, 'inputShape' | 'batch' | 'seed' | 'outChannels'>;

export const UNET_PRESETS: Record<UNetPresetName, UNetPreset> = {
  /** ≈0.62 M at 28×28×1; layer list in the file comment. */
  XS: {
    baseChannels: 32,
    channelMult: [1, 2, 2],
    numResBlocks: 1,
    attentionResolutions: [],
    numHeads: 4,
    groups: 8,
    timeEmbedDim: 32,
    timeHiddenDim: 128,
    timeScale: 1000,
    useScaleShift: false,
    middleAttention: false,
    upConv: false,
    skips: 'resblocks',
    zeroInit: true,
  },
  /** MNIST/CIFAR scale: two blocks per level, attention at 1/4 resolution (7×7 / 8×8). */
  S: {
    baseChannels: 64,
    channelMult: [1, 2, 2],
    numResBlocks: 2,
    attentionResolutions: [4],
    numHeads: 4,
    groups: 32,
    timeEmbedDim: 64,
    timeHiddenDim: 256,
    timeScale: 1000,
    useScaleShift: true,
    middleAttention: true,
    upConv: true,
    skips: 'all',
    zeroInit: true,
  },
  /** The torchcfm CIFAR-10 U-Net shape (128 channels, mult 1-2-2-2, attention at 16×16). */
  B: {
    baseChannels: 128,
    channelMult: [1, 2, 2, 2],
    numResBlocks: 2,
    attentionResolutions: [2],
    numHeads: 4,
    groups: 32,
    timeEmbedDim: 128,
    timeHiddenDim: 512,
    timeScale: 1000,
    useScaleShift: true,
    middleAttention: true,
    upConv: true,
    skips: 'all',
    zeroInit: true,
  },
};

export interface BuiltNet<C> {
  graph: Graph;
  /** Number of trainable scalars. */
  params: number;
  /** Initializer names that are trainable parameters (the rest are constants). */
  paramNames: string[];
  config: C;
}

interface Ctx {
  p: Params;
  b: GraphBuilder;
  cfg: UNetConfig;
  /** SiLU(emb), the input to every ResBlock's projection. */
  embAct: Value;
}

function resBlock(ctx: Ctx, name: string, x: Value, outC: number): Value {
  const { p, b, cfg } = ctx;
  const inC = x.shape[1] as number;
  let h = b.silu(groupNorm(p, `${name}.norm1`, x, cfg.groups));
  h = conv2d(p, `${name}.conv1`, h, inC, outC, 3, { pad: 1 });
  const proj: LinearParams = linearParams(
    p,
    `${name}.emb`,
    cfg.timeHiddenDim,
    cfg.useScaleShift ? 2 * outC : outC,
  );
  const e = b.unsqueeze(applyLinear(b, ctx.embAct, proj), [2, 3]);
  if (cfg.useScaleShift) {
    const [scale, shift] = b.split(e, [outC, outC], 1);
    h = groupNorm(p, `${name}.norm2`, h, cfg.groups);
    h = b.add(b.mul(h, b.add(scale, 1)), shift);
  } else {
    h = groupNorm(p, `${name}.norm2`, b.add(h, e), cfg.groups);
  }
  h = conv2d(p, `${name}.conv2`, b.silu(h), outC, outC, 3, { pad: 1, zero: cfg.zeroInit });
  const skip = inC === outC ? x : conv2d(p, `${name}.skip`, x, inC, outC, 1);
  return b.add(skip, h);
}

/**
 * Self-attention over the H·W positions, improved-diffusion's AttentionBlock (legacy QKV order):
 * x + proj(attn(qkv(GN(x)))), qkv and proj as 1×1 convs ([3C, C, 1, 1], [C, C, 1, 1]).
 */
export function attentionBlock2d(
  p: Params,
  name: string,
  x: Value,
  o: { heads: number; groups: number; zeroProj: boolean },
): Value {
  const b = p.b;
  const [, c, hh, ww] = x.shape as [unknown, number, number, number];
  const heads = o.heads;
  if (c % heads)
    throw new Error(`attention ${name}: ${c} channels not divisible by ${heads} heads`);
  const d = c / heads;
  const qkv = conv2d(p, `${name}.qkv`, groupNorm(p, `${name}.norm`, x, o.groups), c, 3 * c, 1);
  // Per head, channels are [q | k | v] (d each), as in improved-diffusion's QKVAttention.
  const r = b.reshape(qkv, [0, heads, 3 * d, hh * ww]);
  const [q, k, v] = b.split(r, [d, d, d], 2).map((z) => b.transpose(z, [0, 1, 3, 2]));
  const a = b.transpose(attention(b, q, k, v, d), [0, 1, 3, 2]);
  const out = conv2d(p, `${name}.proj`, b.reshape(a, [0, c, hh, ww]), c, c, 1, {
    zero: o.zeroProj,
  });
  return b.add(x, out);
}

function attnBlock(ctx: Ctx, name: string, x: Value): Value {
  const { cfg } = ctx;
  return attentionBlock2d(ctx.p, name, x, {
    heads: cfg.numHeads,
    groups: cfg.groups,
    zeroProj: cfg.zeroInit,
  });
}

/** Nearest ×2 (the integer-scale Resize the autodiff supports), cropped to `size` if odd. */
function upsampleTo(b: GraphBuilder, x: Value, size: [number, number]): Value {
  const [h, w] = [x.shape[2] as number, x.shape[3] as number];
  if (2 * h < size[0] || 2 * w < size[1] || 2 * h > size[0] + 1 || 2 * w > size[1] + 1)
    throw new Error(`upsample: cannot bring ${h}×${w} to ${size[0]}×${size[1]} by ×2`);
  let y = b.resizeNearest(x, [1, 1, 2, 2]);
  if (2 * h !== size[0] || 2 * w !== size[1]) y = b.slice(y, [0, 0], size, [2, 3]);
  return y;
}

export function validateUNetConfig(cfg: UNetConfig): void {
  const [c, h, w] = cfg.inputShape;
  for (const [v, what] of [
    [c, 'channels'],
    [h, 'height'],
    [w, 'width'],
    [cfg.baseChannels, 'baseChannels'],
    [cfg.numResBlocks, 'numResBlocks'],
    [cfg.numHeads, 'numHeads'],
    [cfg.groups, 'groups'],
    [cfg.timeHiddenDim, 'timeHiddenDim'],
  ] as const)
    assertInt(v, `unet ${what}`);
  if (!cfg.channelMult.length) throw new Error('unet channelMult: needs at least one level');
  cfg.channelMult.forEach((m) => assertInt(m, 'unet channelMult entry'));
  if (cfg.timeEmbedDim % 2 || cfg.timeEmbedDim <= 0)
    throw new Error(`unet timeEmbedDim: must be a positive even number, got ${cfg.timeEmbedDim}`);
  if (cfg.batch !== undefined) assertInt(cfg.batch, 'unet batch');
}

export function buildUNet(cfg: UNetConfig, init: ParamInit = {}): BuiltNet<UNetConfig> {
  validateUNetConfig(cfg);
  const [C, H, W] = cfg.inputShape;
  const outC = cfg.outChannels ?? C;
  const batch = cfg.batch ?? 'N';
  const b = new GraphBuilder('unet');
  const p = new Params(b, cfg.seed ?? 0, init);
  const x = b.input('x', [batch, C, H, W]);
  const t = b.input('t', [batch]);

  const temb = timestepEmbedding(b, t, cfg.timeEmbedDim, cfg.timeScale);
  const t1 = linearParams(p, 'time.fc1', cfg.timeEmbedDim, cfg.timeHiddenDim);
  const t2 = linearParams(p, 'time.fc2', cfg.timeHiddenDim, cfg.timeHiddenDim);
  const emb = applyLinear(b, b.silu(applyLinear(b, temb, t1)), t2);
  const ctx: Ctx = { p, b, cfg, embAct: b.silu(emb) };

  const levels = cfg.channelMult.length;
  const attnAt = (level: number) => cfg.attentionResolutions.includes(2 ** level);
  const all = cfg.skips === 'all';
  const skips: Value[] = [];

  let h = conv2d(p, 'input.conv', x, C, cfg.baseChannels, 3, { pad: 1 });
  if (all) skips.push(h);
  for (let i = 0; i < levels; i++) {
    const ch = cfg.baseChannels * cfg.channelMult[i];
    for (let j = 0; j < cfg.numResBlocks; j++) {
      h = resBlock(ctx, `down.${i}.res.${j}`, h, ch);
      if (attnAt(i)) h = attnBlock(ctx, `down.${i}.attn.${j}`, h);
      skips.push(h);
    }
    if (i < levels - 1) {
      h = conv2d(p, `down.${i}.downsample`, h, ch, ch, 3, { stride: 2, pad: 1 });
      if (all) skips.push(h);
    }
  }

  const midC = h.shape[1] as number;
  h = resBlock(ctx, 'mid.res.0', h, midC);
  if (cfg.middleAttention) {
    h = attnBlock(ctx, 'mid.attn', h);
    h = resBlock(ctx, 'mid.res.1', h, midC);
  }

  for (let i = levels - 1; i >= 0; i--) {
    const ch = cfg.baseChannels * cfg.channelMult[i];
    const blocks = cfg.numResBlocks + (all ? 1 : 0);
    for (let j = 0; j < blocks; j++) {
      const skip = skips.pop();
      if (!skip) throw new Error('unet: skip stack exhausted (internal error)');
      h = resBlock(ctx, `up.${i}.res.${j}`, b.concat([h, skip], 1), ch);
      if (attnAt(i)) h = attnBlock(ctx, `up.${i}.attn.${j}`, h);
    }
    if (i > 0) {
      const next = skips[skips.length - 1];
      h = upsampleTo(b, h, [next.shape[2] as number, next.shape[3] as number]);
      if (cfg.upConv) h = conv2d(p, `up.${i}.upsample`, h, ch, ch, 3, { pad: 1 });
    }
  }
  if (skips.length) throw new Error(`unet: ${skips.length} skips left over (internal error)`);

  h = b.silu(groupNorm(p, 'out.norm', h, cfg.groups));
  h = conv2d(p, 'out.conv', h, h.shape[1] as number, outC, 3, { pad: 1, zero: cfg.zeroInit });
  b.output(h, 'v');
  b.metadata['prg.net'] = 'unet';
  b.metadata['prg.config'] = JSON.stringify(cfg);
  return { graph: b.build(), params: p.count, paramNames: [...p.names], config: cfg };
}
