/**
 * SiT checkpoints (Ma et al. 2024, github.com/willisma/SiT `models.py`) → this project's DiT
 * graph (src/prg/nets/dit.ts), which is the same network: patch embedding + stored pos_embed,
 * sinusoidal(256) time MLP, adaLN-Zero blocks with timm attention and tanh-GELU MLP, final adaLN
 * layer, unpatchify.
 *
 * The architecture is read from key shapes (patch, channels, hidden, depth, MLP ratio, grid,
 * learn_sigma, label rows) and checked against a declared `--config` (SiT-S/B/L/XL with patch
 * 2/4/8), which also gives the head count (the file does not store it).
 *
 * - learn_sigma: the final linear predicts 2C channels per patch pixel; SiT's forward keeps the
 *   first C. Its rows are ordered (p1, p2, channel), so the kept rows are r with r mod 2C < C.
 * - Labels: c = t_emb + table[y]. Unconditional import (the default) folds the null-class row
 *   (the last one, index num_classes, used for classifier-free guidance) into a fixed vector.
 * - DiT checkpoints have the same keys but are diffusion (ε/σ) models fed integer timesteps;
 *   they are refused when the file says it is one, unless forced.
 */
import { Opaque, StoredTensor } from '../../engine/checkpoints';
import { DiTConfig, buildDiT } from '../nets/dit';
import { KeyMap, selectRows } from './mapping';
import { ImportPlan } from './plan';

/** depth, hidden size and heads of the four SiT sizes (SiT models.py `SiT_*` constructors). */
export const SIT_SIZES: Record<string, { depth: number; hidden: number; heads: number }> = {
  S: { depth: 12, hidden: 384, heads: 6 },
  B: { depth: 12, hidden: 768, heads: 12 },
  L: { depth: 24, hidden: 1024, heads: 16 },
  XL: { depth: 28, hidden: 1152, heads: 16 },
};

export interface SitOptions {
  /** e.g. "SiT-XL/2"; omitted = detected from the shapes (then a custom size needs heads). */
  config?: string;
  heads?: number;
  /** SiT's interpolant: linear (→ manifest icfm) or gvp. The file does not say. */
  path: 'linear' | 'gvp';
  /** Label row folded in for the unconditional graph (default: the null class, the last row). */
  label?: number;
  /** Import a DiT-named checkpoint anyway. */
  force?: boolean;
}

export interface SitShape {
  inChannels: number;
  patch: number;
  hidden: number;
  depth: number;
  mlpHidden: number;
  freqDim: number;
  inputSize: number;
  learnSigma: boolean;
  labelRows: number;
}

function shapeOf(sd: Map<string, StoredTensor>, key: string, rank: number): number[] {
  const t = sd.get(key);
  if (!t) throw new Error(`not a SiT state_dict: key ${key} is missing`);
  if (t.shape.length !== rank)
    throw new Error(`not a SiT state_dict: ${key} has shape [${t.shape}], expected rank ${rank}`);
  return [...t.shape];
}

export function detectSit(sd: Map<string, StoredTensor>): SitShape {
  const [hidden, inChannels, patch, patch2] = shapeOf(sd, 'x_embedder.proj.weight', 4);
  if (patch !== patch2) throw new Error(`SiT patch embedding is ${patch}×${patch2}, not square`);
  const tokens = shapeOf(sd, 'pos_embed', 3)[1];
  const grid = Math.round(Math.sqrt(tokens));
  if (grid * grid !== tokens) throw new Error(`SiT pos_embed has ${tokens} tokens, not a square`);
  let depth = 0;
  while (sd.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  if (!depth) throw new Error('not a SiT state_dict: no blocks.0.attn.qkv.weight');
  const out = shapeOf(sd, 'final_layer.linear.weight', 2)[0] / (patch * patch);
  if (out !== inChannels && out !== 2 * inChannels)
    throw new Error(
      `SiT final layer predicts ${out} channels per pixel; expected ${inChannels} or ` +
        `${2 * inChannels} (learn_sigma)`,
    );
  const table = sd.get('y_embedder.embedding_table.weight');
  return {
    inChannels,
    patch,
    hidden,
    depth,
    mlpHidden: shapeOf(sd, 'blocks.0.mlp.fc1.weight', 2)[0],
    freqDim: shapeOf(sd, 't_embedder.mlp.0.weight', 2)[1],
    inputSize: grid * patch,
    learnSigma: out === 2 * inChannels,
    labelRows: table ? table.shape[0] : 0,
  };
}

/** "SiT-XL/2" → size and patch, checked against what the file holds. */
function checkConfig(name: string, s: SitShape): { heads: number } {
  const m = /^SiT-(S|B|L|XL)\/(2|4|8)$/.exec(name);
  if (!m) throw new Error(`--config ${name}: expected SiT-S|B|L|XL/2|4|8`);
  const size = SIT_SIZES[m[1]];
  const found = `depth ${s.depth}, hidden ${s.hidden}, patch ${s.patch}`;
  if (size.depth !== s.depth || size.hidden !== s.hidden || Number(m[2]) !== s.patch)
    throw new Error(
      `--config ${name} declares depth ${size.depth}, hidden ${size.hidden}, patch ${m[2]}; ` +
        `the checkpoint has ${found}`,
    );
  return { heads: size.heads };
}

/** What the file says it is, when it says: training-script checkpoints carry args.model. */
function declaredModel(root: unknown): string | undefined {
  if (!(root instanceof Map)) return undefined;
  const args = root.get('args');
  if (args instanceof Opaque && args.state instanceof Map) {
    const m = args.state.get('model');
    return typeof m === 'string' ? m : undefined;
  }
  return undefined;
}

export function sitKeyMap(s: SitShape, cfg: DiTConfig, label: number | undefined): KeyMap {
  const map: KeyMap = new Map();
  const same = (ours: string, theirs: string) => map.set(ours, { key: theirs });
  const linear = (ours: string, theirs: string) => {
    same(`${ours}.weight`, `${theirs}.weight`);
    same(`${ours}.bias`, `${theirs}.bias`);
  };
  linear('patch', 'x_embedder.proj');
  same('pos_embed', 'pos_embed');
  linear('time.fc1', 't_embedder.mlp.0');
  linear('time.fc2', 't_embedder.mlp.2');
  for (let i = 0; i < s.depth; i++) {
    linear(`blocks.${i}.adaLN`, `blocks.${i}.adaLN_modulation.1`);
    linear(`blocks.${i}.attn.qkv`, `blocks.${i}.attn.qkv`);
    linear(`blocks.${i}.attn.proj`, `blocks.${i}.attn.proj`);
    linear(`blocks.${i}.mlp.fc1`, `blocks.${i}.mlp.fc1`);
    linear(`blocks.${i}.mlp.fc2`, `blocks.${i}.mlp.fc2`);
  }
  linear('final.adaLN', 'final_layer.adaLN_modulation.1');
  const C = s.inChannels;
  const pp = s.patch * s.patch;
  if (s.learnSigma) {
    // Keep the first C of 2C output channels: rows (p1·p + p2)·2C + c with c < C.
    const keep = (r: number) => r % (2 * C) < C;
    const note = `learn_sigma: rows with (row mod ${2 * C}) < ${C} (the mean, not Σ)`;
    map.set('final.linear.weight', {
      key: 'final_layer.linear.weight',
      transform: {
        expect: [pp * 2 * C, s.hidden],
        apply: (v) => selectRows(v, pp * 2 * C, keep),
        note,
      },
    });
    map.set('final.linear.bias', {
      key: 'final_layer.linear.bias',
      transform: { expect: [pp * 2 * C], apply: (v) => selectRows(v, pp * 2 * C, keep), note },
    });
  } else linear('final.linear', 'final_layer.linear');
  if (cfg.classEmbed?.kind === 'input') same('y_embed.table', 'y_embedder.embedding_table.weight');
  if (cfg.classEmbed?.kind === 'fixed' && label !== undefined) {
    const D = s.hidden;
    map.set('y_embed.fixed', {
      key: 'y_embedder.embedding_table.weight',
      transform: {
        expect: [s.labelRows, D],
        apply: (v) => v.slice(label * D, (label + 1) * D),
        note: `row ${label} of the label table folded in`,
      },
    });
  }
  return map;
}

export function planSit(
  sd: Map<string, StoredTensor>,
  root: unknown,
  file: string,
  o: SitOptions & { classConditional?: boolean; cfgScale?: number },
): ImportPlan<DiTConfig> {
  const declared = declaredModel(root);
  const looksDiT =
    (declared !== undefined && /^DiT/i.test(declared)) ||
    (declared === undefined && /(^|[^a-z])dit[-_]/i.test(file.split('/').pop() ?? ''));
  if (looksDiT && !o.force)
    throw new Error(
      `${file} looks like a DiT checkpoint (${declared ? `args.model = ${declared}` : 'file name'}): ` +
        'same keys as SiT, but a diffusion model (predicts noise and σ, integer timesteps 0–999), ' +
        'not a velocity field, so its ODE is not a flow. Pass --force to import it anyway.',
    );
  const s = detectSit(sd);
  let heads = o.heads;
  let configName = o.config;
  if (o.config) {
    const sizeHeads = checkConfig(o.config, s).heads;
    heads ??= sizeHeads;
  } else {
    const size = Object.entries(SIT_SIZES).find(
      ([, v]) => v.depth === s.depth && v.hidden === s.hidden,
    );
    if (size) {
      configName = `SiT-${size[0]}/${s.patch}`;
      heads ??= size[1].heads;
    }
  }
  if (!heads)
    throw new Error(
      `depth ${s.depth}, hidden ${s.hidden} is no standard SiT size; pass --heads N (and --config ` +
        'for a standard one)',
    );
  if (s.hidden % heads) throw new Error(`hidden ${s.hidden} is not divisible by ${heads} heads`);
  let label: number | undefined;
  if (!o.classConditional && s.labelRows) {
    label = o.label ?? s.labelRows - 1;
    if (!Number.isInteger(label) || label < 0 || label >= s.labelRows)
      throw new Error(`--label ${label}: the label table has ${s.labelRows} rows`);
  }
  const cfg: DiTConfig = {
    inputShape: [s.inChannels, s.inputSize, s.inputSize],
    outChannels: s.inChannels,
    patchSize: s.patch,
    hiddenSize: s.hidden,
    depth: s.depth,
    numHeads: heads,
    mlpRatio: s.mlpHidden / s.hidden,
    freqEmbedDim: s.freqDim,
    // SiT feeds raw t ∈ [0, 1] to the sinusoidal embedding (no ×1000).
    timeScale: 1,
    posEmbed: 'learned',
    gelu: 'tanh',
    zeroInit: false,
    classEmbed: o.classConditional
      ? { kind: 'input', rows: s.labelRows }
      : label !== undefined
        ? { kind: 'fixed' }
        : undefined,
  };
  if (o.classConditional && !s.labelRows)
    throw new Error('class-conditional import: the checkpoint has no y_embedder table');
  const net = buildDiT(cfg, { placeholders: true });
  const map = sitKeyMap(s, cfg, label);
  const ignored: Record<string, string> = {};
  if (s.labelRows && label === undefined && !o.classConditional)
    ignored['y_embedder.embedding_table.weight'] = 'no label folded in';
  return {
    family: 'sit',
    kind: 'dit',
    net,
    map,
    ignored,
    // SiT freezes pos_embed (requires_grad=False); fine-tuning keeps it fixed too.
    trainable: net.paramNames.filter((n) => n !== 'pos_embed'),
    upstream: {
      config: configName ?? 'custom',
      declaredModel: declared,
      path: o.path,
      learnSigma: s.learnSigma,
      inputSize: s.inputSize,
      inChannels: s.inChannels,
      heads,
      labelRows: s.labelRows,
      label: o.classConditional ? 'input y' : (label ?? 'none'),
    },
    interpolant: o.path === 'gvp' ? 'gvp' : 'icfm',
    // SiT trains with class dropout, which appends the null class as the table's last row.
    labels: o.classConditional
      ? {
          classes: s.labelRows - 1,
          nullClass: s.labelRows - 1,
          ...(o.cfgScale !== undefined ? { cfgScale: o.cfgScale } : {}),
        }
      : undefined,
  };
}
