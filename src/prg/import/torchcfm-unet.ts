/**
 * torchcfm U-Nets (github.com/atong01/conditional-flow-matching, `torchcfm/models/unet`,
 * `UNetModelWrapper`: improved-diffusion's UNetModel) → this project's U-Net
 * (src/prg/nets/unet.ts), which has the same structure with `skips: 'all'`, upsample convs,
 * middle attention, GroupNorm(32) and legacy QKV order.
 *
 * The wrapper's arguments are declared (defaults: the CIFAR-10 training script's
 * `UNetModelWrapper(dim=(3, 32, 32), num_channels=128, num_res_blocks=2,
 * channel_mult=[1, 2, 2, 2], num_heads=4, num_head_channels=64, attention_resolutions="16")`);
 * a checkpoint that does not fit them fails the key check with every offending key named.
 * torchcfm feeds raw t ∈ [0, 1] to the sinusoidal embedding (timeScale 1).
 */
import { StoredTensor } from '../../engine/checkpoints';
import { UNetConfig, buildUNet } from '../nets/unet';
import { KeyMap } from './mapping';
import { ImportPlan } from './plan';

export interface TorchcfmUNetOptions {
  /** (C, H, W); the wrapper's `dim`. */
  dim: [number, number, number];
  numChannels: number;
  numResBlocks: number;
  channelMult: number[];
  /** Comma-separated resolutions, as the wrapper takes them (e.g. "16"). */
  attentionResolutions: string;
  numHeads: number;
  /** -1: use numHeads; else heads = channels / numHeadChannels. */
  numHeadChannels: number;
  useScaleShiftNorm: boolean;
  interpolant: 'icfm' | 'otcfm';
}

export const TORCHCFM_CIFAR10: TorchcfmUNetOptions = {
  dim: [3, 32, 32],
  numChannels: 128,
  numResBlocks: 2,
  channelMult: [1, 2, 2, 2],
  attentionResolutions: '16',
  numHeads: 4,
  numHeadChannels: 64,
  useScaleShiftNorm: false,
  interpolant: 'icfm',
};

export function torchcfmConfig(o: TorchcfmUNetOptions): UNetConfig {
  const size = o.dim[2];
  const ds = o.attentionResolutions
    .split(',')
    .filter((r) => r.trim())
    .map((r) => {
      const v = size / Number(r);
      if (!Number.isInteger(v) || v < 1)
        throw new Error(`attention resolution ${r} does not divide image size ${size}`);
      return v;
    });
  // The wrapper gives every attention block its own head count (channels / numHeadChannels);
  // this project's U-Net has one, so all attention levels (and the middle) must agree.
  const levels = o.channelMult.map((m, i) => ({ ch: o.numChannels * m, ds: 2 ** i }));
  const attnChannels = [
    ...levels.filter((l) => ds.includes(l.ds)).map((l) => l.ch),
    o.numChannels * o.channelMult[o.channelMult.length - 1],
  ];
  const heads = attnChannels.map((c) =>
    o.numHeadChannels === -1 ? o.numHeads : c / o.numHeadChannels,
  );
  if (heads.some((h) => !Number.isInteger(h) || h !== heads[0]))
    throw new Error(
      `attention head counts differ between levels (${heads.join(', ')}); ` +
        'only one head count per net is supported',
    );
  return {
    inputShape: o.dim,
    baseChannels: o.numChannels,
    channelMult: o.channelMult,
    numResBlocks: o.numResBlocks,
    attentionResolutions: ds,
    numHeads: heads[0],
    groups: 32,
    timeEmbedDim: o.numChannels,
    timeHiddenDim: 4 * o.numChannels,
    timeScale: 1,
    useScaleShift: o.useScaleShiftNorm,
    middleAttention: true,
    upConv: true,
    skips: 'all',
    zeroInit: false,
  };
}

/** Our parameter names → UNetModel's, walking both structures in the same order. */
export function torchcfmKeyMap(cfg: UNetConfig): KeyMap {
  const map: KeyMap = new Map();
  const same = (ours: string, theirs: string) => {
    map.set(`${ours}.weight`, { key: `${theirs}.weight` });
    map.set(`${ours}.bias`, { key: `${theirs}.bias` });
  };
  const res = (ours: string, theirs: string, skip: boolean) => {
    same(`${ours}.norm1`, `${theirs}.in_layers.0`);
    same(`${ours}.conv1`, `${theirs}.in_layers.2`);
    same(`${ours}.emb`, `${theirs}.emb_layers.1`);
    same(`${ours}.norm2`, `${theirs}.out_layers.0`);
    same(`${ours}.conv2`, `${theirs}.out_layers.3`);
    if (skip) same(`${ours}.skip`, `${theirs}.skip_connection`);
  };
  const attn = (ours: string, theirs: string) => {
    same(`${ours}.norm`, `${theirs}.norm`);
    same(`${ours}.qkv`, `${theirs}.qkv`); // Conv1d [3C, C, 1] → our [3C, C, 1, 1]
    same(`${ours}.proj`, `${theirs}.proj_out`);
  };
  same('time.fc1', 'time_embed.0');
  same('time.fc2', 'time_embed.2');
  same('input.conv', 'input_blocks.0.0');
  const L = cfg.channelMult.length;
  const hasAttn = (i: number) => cfg.attentionResolutions.includes(2 ** i);
  const chans = [cfg.baseChannels];
  let ch = cfg.baseChannels;
  let k = 1;
  for (let i = 0; i < L; i++) {
    const out = cfg.baseChannels * cfg.channelMult[i];
    for (let j = 0; j < cfg.numResBlocks; j++) {
      res(`down.${i}.res.${j}`, `input_blocks.${k}.0`, ch !== out);
      if (hasAttn(i)) attn(`down.${i}.attn.${j}`, `input_blocks.${k}.1`);
      ch = out;
      chans.push(ch);
      k++;
    }
    if (i < L - 1) {
      same(`down.${i}.downsample`, `input_blocks.${k}.0.op`);
      chans.push(ch);
      k++;
    }
  }
  res('mid.res.0', 'middle_block.0', false);
  attn('mid.attn', 'middle_block.1');
  res('mid.res.1', 'middle_block.2', false);
  k = 0;
  for (let i = L - 1; i >= 0; i--) {
    const out = cfg.baseChannels * cfg.channelMult[i];
    for (let j = 0; j <= cfg.numResBlocks; j++) {
      const skipCh = chans.pop() as number;
      res(`up.${i}.res.${j}`, `output_blocks.${k}.0`, ch + skipCh !== out);
      ch = out;
      let idx = 1;
      if (hasAttn(i)) attn(`up.${i}.attn.${j}`, `output_blocks.${k}.${idx++}`);
      if (i > 0 && j === cfg.numResBlocks)
        same(`up.${i}.upsample`, `output_blocks.${k}.${idx}.conv`);
      k++;
    }
  }
  same('out.norm', 'out.0');
  same('out.conv', 'out.2');
  return map;
}

export function planTorchcfmUNet(
  _sd: Map<string, StoredTensor>,
  o: TorchcfmUNetOptions,
): ImportPlan<UNetConfig> {
  const cfg = torchcfmConfig(o);
  const net = buildUNet(cfg, { placeholders: true });
  return {
    family: 'torchcfm-unet',
    kind: 'unet',
    net,
    map: torchcfmKeyMap(cfg),
    ignored: {},
    trainable: net.paramNames,
    upstream: {
      wrapper: 'UNetModelWrapper',
      dim: o.dim,
      num_channels: o.numChannels,
      num_res_blocks: o.numResBlocks,
      channel_mult: o.channelMult,
      attention_resolutions: o.attentionResolutions,
      num_heads: o.numHeads,
      num_head_channels: o.numHeadChannels,
      use_scale_shift_norm: o.useScaleShiftNorm,
    },
    interpolant: o.interpolant,
  };
}
