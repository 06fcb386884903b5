/**
 * DiT/SiT-style transformer velocity net (Peebles & Xie 2023; SiT, Ma et al. 2024, is the same
 * network trained as a flow; the paper transfers SiT-XL in §4.4.3). Conditioned on t, plus an
 * optional class embedding (classEmbed) for imported SiT checkpoints.
 *
 * Graph contract: inputs `x` [N, C, H, W], `t` [N]; output `v` [N, C, H, W].
 *
 *   tokens = Conv(p×p, stride p)(x) → [N, T, D] + pos     (T = H/p · W/p; 2-D sin-cos or learned)
 *   c      = Linear(SiLU(Linear(sinusoidal(t))))          [N, D]
 *   block  (adaLN-Zero) shift1, scale1, gate1, shift2, scale2, gate2 = Linear(SiLU(c)) (zero init)
 *          x += gate1 · Attn(LN(x)·(1+scale1)+shift1)
 *          x += gate2 · MLP(LN(x)·(1+scale2)+shift2)     LN without affine; MLP = Linear, GELU, Linear
 *   final  shift, scale = Linear(SiLU(c)) (zero init); Linear(D → p·p·C) (zero init) on
 *          LN(x)·(1+scale)+shift; unpatchify to [N, C, H, W].
 * With zeroInit (DiT's initialisation) every gate and the final projection start at zero, so the
 * net starts as v ≡ 0.
 */
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { tensor } from '../../engine/onnx/types';
import {
  ParamInit,
  Params,
  applyLinear,
  assertInt,
  attention,
  gelu,
  layerNorm,
  linearParams,
  timestepEmbedding,
} from './layers';
import { BuiltNet } from './unet';

export interface DiTConfig {
  /** [C, H, W]; H and W must be multiples of patchSize. */
  inputShape: [number, number, number];
  outChannels?: number;
  patchSize: number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /** Width of the sinusoidal embedding of t (DiT: 256). */
  freqEmbedDim: number;
  timeScale: number;
  posEmbed: 'sincos' | 'learned';
  gelu: 'tanh' | 'erf';
  zeroInit: boolean;
  /**
   * Class conditioning added to c (SiT/DiT's LabelEmbedder): 'fixed' adds one learned vector
   * `y_embed.fixed` [D] (an imported SiT's null-class row, making it unconditional); 'input'
   * adds row y of `y_embed.table` [rows, D] for an int64 graph input `y` [N].
   */
  classEmbed?: { kind: 'fixed' } | { kind: 'input'; rows: number };
  batch?: number;
  seed?: number;
}

export type DiTPresetName = 'XS' | 'S' | 'B';
export type DiTPreset = Omit<DiTConfig, 'inputShape' | 'batch' | 'seed' | 'outChannels'>;

const ditCommon = {
  mlpRatio: 4,
  timeScale: 1000,
  posEmbed: 'sincos',
  gelu: 'tanh',
  zeroInit: true,
} as const;

export const DIT_PRESETS: Record<DiTPresetName, DiTPreset> = {
  XS: { ...ditCommon, patchSize: 4, hiddenSize: 64, depth: 4, numHeads: 4, freqEmbedDim: 64 },
  S: { ...ditCommon, patchSize: 2, hiddenSize: 256, depth: 8, numHeads: 4, freqEmbedDim: 256 },
  B: { ...ditCommon, patchSize: 2, hiddenSize: 384, depth: 12, numHeads: 6, freqEmbedDim: 256 },
};

/**
 * 2-D sin-cos positional embedding [gh·gw, D] (MAE/DiT): half the channels embed the row index,
 * half the column; each half is [sin(pos·ω_k), cos(pos·ω_k)], ω_k = 10000^(-k/(D/4)).
 */
export function sincos2d(dim: number, gh: number, gw: number): Float32Array {
  if (dim % 4) throw new Error(`sincos2d: dim must be a multiple of 4, got ${dim}`);
  const quarter = dim / 4;
  const out = new Float32Array(gh * gw * dim);
  for (let i = 0; i < gh; i++)
    for (let j = 0; j < gw; j++) {
      const row = (i * gw + j) * dim;
      for (let k = 0; k < quarter; k++) {
        const omega = 1 / 10000 ** (k / quarter);
        // DiT's grid puts the column (w) coordinate first, then the row (h).
        out[row + k] = Math.sin(j * omega);
        out[row + quarter + k] = Math.cos(j * omega);
        out[row + 2 * quarter + k] = Math.sin(i * omega);
        out[row + 3 * quarter + k] = Math.cos(i * omega);
      }
    }
  return out;
}

/** x·(1+scale)+shift with scale, shift [N, D] broadcast over tokens. */
function modulate(b: GraphBuilder, x: Value, shift: Value, scale: Value): Value {
  return b.add(b.mul(x, b.add(b.unsqueeze(scale, [1]), 1)), b.unsqueeze(shift, [1]));
}

function selfAttention(p: Params, name: string, x: Value, cfg: DiTConfig, tokens: number): Value {
  const b = p.b;
  const D = cfg.hiddenSize;
  const heads = cfg.numHeads;
  const d = D / heads;
  const qkv = applyLinear(b, x, linearParams(p, `${name}.qkv`, D, 3 * D));
  // timm layout: the 3·D features are [q | k | v], each split into heads of d.
  const [q, k, v] = b
    .split(qkv, [D, D, D], 2)
    .map((z) => b.transpose(b.reshape(z, [0, tokens, heads, d]), [0, 2, 1, 3]));
  const a = b.reshape(b.transpose(attention(b, q, k, v, d), [0, 2, 1, 3]), [0, tokens, D]);
  return applyLinear(b, a, linearParams(p, `${name}.proj`, D, D));
}

export function validateDiTConfig(cfg: DiTConfig): void {
  const [c, h, w] = cfg.inputShape;
  for (const [v, what] of [
    [c, 'channels'],
    [h, 'height'],
    [w, 'width'],
    [cfg.patchSize, 'patchSize'],
    [cfg.hiddenSize, 'hiddenSize'],
    [cfg.numHeads, 'numHeads'],
  ] as const)
    assertInt(v, `dit ${what}`);
  // depth 0 is allowed: patchify → final layer only (used to test the patch order).
  if (!Number.isInteger(cfg.depth) || cfg.depth < 0)
    throw new Error(`dit depth: expected a non-negative integer, got ${cfg.depth}`);
  if (h % cfg.patchSize || w % cfg.patchSize)
    throw new Error(`dit: input ${h}×${w} is not a multiple of patchSize ${cfg.patchSize}`);
  if (cfg.hiddenSize % cfg.numHeads)
    throw new Error(`dit: hiddenSize ${cfg.hiddenSize} not divisible by ${cfg.numHeads} heads`);
  if (cfg.hiddenSize % 4) throw new Error(`dit: hiddenSize must be a multiple of 4`);
  if (cfg.freqEmbedDim % 2 || cfg.freqEmbedDim <= 0)
    throw new Error(`dit freqEmbedDim: must be a positive even number, got ${cfg.freqEmbedDim}`);
  if (!(cfg.mlpRatio > 0)) throw new Error(`dit mlpRatio: must be positive`);
  if (cfg.batch !== undefined) assertInt(cfg.batch, 'dit batch');
}

export function buildDiT(cfg: DiTConfig, init: ParamInit = {}): BuiltNet<DiTConfig> {
  validateDiTConfig(cfg);
  const [C, H, W] = cfg.inputShape;
  const outC = cfg.outChannels ?? C;
  const P = cfg.patchSize;
  const D = cfg.hiddenSize;
  const gh = H / P;
  const gw = W / P;
  const T = gh * gw;
  const zero = cfg.zeroInit;
  const batch = cfg.batch ?? 'N';
  const b = new GraphBuilder('dit');
  const p = new Params(b, cfg.seed ?? 0, init);
  const x = b.input('x', [batch, C, H, W]);
  const t = b.input('t', [batch]);

  // Patch embedding: Conv(C → D, kernel = stride = P), then [N, D, gh, gw] → [N, T, D].
  const fanIn = C * P * P;
  const pw = p.uniform('patch.weight', [D, C, P, P], 1 / Math.sqrt(fanIn));
  const pb = p.uniform('patch.bias', [D], 1 / Math.sqrt(fanIn));
  const conv = b.conv(x, pw, pb, { strides: [P, P] });
  let h = b.transpose(b.reshape(conv, [0, D, T]), [0, 2, 1]);
  const pos = sincos2d(D, gh, gw);
  const posV =
    cfg.posEmbed === 'learned'
      ? p.values('pos_embed', [1, T, D], pos)
      : b.const(tensor('float32', [1, T, D], pos), 'pos_embed');
  h = b.add(h, posV);

  const temb = timestepEmbedding(b, t, cfg.freqEmbedDim, cfg.timeScale);
  const t1 = linearParams(p, 'time.fc1', cfg.freqEmbedDim, D);
  const t2 = linearParams(p, 'time.fc2', D, D);
  let c = applyLinear(b, b.silu(applyLinear(b, temb, t1)), t2);
  if (cfg.classEmbed?.kind === 'fixed') c = b.add(c, p.uniform('y_embed.fixed', [D], 0.02));
  if (cfg.classEmbed?.kind === 'input') {
    const y = b.input('y', [batch], 'int64');
    c = b.add(c, b.gather(p.uniform('y_embed.table', [cfg.classEmbed.rows, D], 0.02), y, 0));
  }
  const cAct = b.silu(c);
  const hidden = Math.round(D * cfg.mlpRatio);

  for (let i = 0; i < cfg.depth; i++) {
    const name = `blocks.${i}`;
    const mod = applyLinear(b, cAct, linearParams(p, `${name}.adaLN`, D, 6 * D, { zero }));
    const [sh1, sc1, g1, sh2, sc2, g2] = b.split(mod, [D, D, D, D, D, D], 1);
    const a = selfAttention(
      p,
      `${name}.attn`,
      modulate(b, layerNorm(p, `${name}.norm1`, h, false), sh1, sc1),
      cfg,
      T,
    );
    h = b.add(h, b.mul(b.unsqueeze(g1, [1]), a));
    let m = modulate(b, layerNorm(p, `${name}.norm2`, h, false), sh2, sc2);
    m = gelu(b, applyLinear(b, m, linearParams(p, `${name}.mlp.fc1`, D, hidden)), cfg.gelu);
    m = applyLinear(b, m, linearParams(p, `${name}.mlp.fc2`, hidden, D));
    h = b.add(h, b.mul(b.unsqueeze(g2, [1]), m));
  }

  const fmod = applyLinear(b, cAct, linearParams(p, 'final.adaLN', D, 2 * D, { zero }));
  const [fsh, fsc] = b.split(fmod, [D, D], 1);
  h = modulate(b, layerNorm(p, 'final.norm', h, false), fsh, fsc);
  h = applyLinear(b, h, linearParams(p, 'final.linear', D, P * P * outC, { zero }));
  // Unpatchify: [N, T, p·p·C] → [N, gh, gw, p, p, C] → [N, C, gh, p, gw, p] → [N, C, H, W].
  h = b.reshape(h, [0, gh, gw, P, P, outC]);
  h = b.reshape(b.transpose(h, [0, 5, 1, 3, 2, 4]), [0, outC, H, W]);
  b.output(h, 'v');
  b.metadata['prg.net'] = 'dit';
  b.metadata['prg.config'] = JSON.stringify(cfg);
  return { graph: b.build(), params: p.count, paramNames: [...p.names], config: cfg };
}
