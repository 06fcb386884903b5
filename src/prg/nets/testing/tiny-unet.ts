/**
 * Test fixture: a tiny U-Net config that switches on every optional part (attention at 2×
 * downsampling and in the middle, scale-shift time conditioning, 'all' skips, upsample convs,
 * several heads), small enough that forward and backward passes take milliseconds.
 */
import { UNetConfig } from '../unet';

/** Random (not zero) init, so outputs and gradients are non-trivial; `over` replaces fields. */
export const tinyAttentionUNet = (over: Partial<UNetConfig> = {}): UNetConfig => ({
  inputShape: [3, 16, 16],
  baseChannels: 8,
  channelMult: [1, 2],
  numResBlocks: 1,
  attentionResolutions: [2],
  numHeads: 2,
  groups: 4,
  timeEmbedDim: 8,
  timeHiddenDim: 16,
  timeScale: 1000,
  useScaleShift: true,
  middleAttention: true,
  upConv: true,
  skips: 'all',
  zeroInit: false,
  seed: 3,
  ...over,
});
