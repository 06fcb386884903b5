/**
 * Velocity nets v_θ(x, t) by kind and preset. Paper §3.1: the flow's velocity is a network
 * v_θ(x_t, t); the method is agnostic to its architecture (App. A), so a U-Net and a DiT are offered.
 */
import { DIT_PRESETS, DiTConfig, DiTPresetName, buildDiT } from './dit';
import { BuiltNet, UNET_PRESETS, UNetConfig, UNetPresetName, buildUNet } from './unet';

export * from './dit';
export * from './unet';

export type VelocityNetKind = 'unet' | 'dit';

export interface VelocityNetOptions {
  kind: VelocityNetKind;
  preset: string;
  /** [C, H, W] */
  inputShape: [number, number, number];
  /** Fixed batch; omitted = symbolic 'N'. */
  batch?: number;
  seed: number;
  /** Overrides of preset fields (e.g. `{ zeroInit: false }`). */
  overrides?: Partial<UNetConfig> | Partial<DiTConfig>;
}

export type VelocityNet = BuiltNet<UNetConfig> | BuiltNet<DiTConfig>;

export function buildVelocityNet(o: VelocityNetOptions): VelocityNet {
  const base = { inputShape: o.inputShape, batch: o.batch, seed: o.seed };
  if (o.kind === 'unet') {
    const preset = UNET_PRESETS[o.preset as UNetPresetName];
    if (!preset)
      throw new Error(`unknown unet preset ${o.preset} (have ${Object.keys(UNET_PRESETS)})`);
    return buildUNet({ ...preset, ...(o.overrides as Partial<UNetConfig>), ...base });
  }
  if (o.kind === 'dit') {
    const preset = DIT_PRESETS[o.preset as DiTPresetName];
    if (!preset)
      throw new Error(`unknown dit preset ${o.preset} (have ${Object.keys(DIT_PRESETS)})`);
    return buildDiT({ ...preset, ...(o.overrides as Partial<DiTConfig>), ...base });
  }
  throw new Error(`unknown velocity net kind ${String(o.kind)} (have unet, dit)`);
}
