/**
 * A served model as the Open Inference Protocol describes it: named, typed tensors with -1 for
 * the batch dimension.
 *
 * Inputs — exactly one per request, they are alternatives:
 *   image        FP32  [-1, C, H, W]  already in the model's input space, x = pixel / 127.5 − 1
 *   pixels       UINT8 [-1, C, H, W]  0…255 at the model's size (normalised by the server)
 *   image_bytes  BYTES [-1]           encoded PNG/JPEG/WebP files, converted like every upload
 * Outputs — any subset, by name (default all):
 *   logits, probabilities  FP32 [-1, K]
 *   features               FP32 [-1, C, H, W]  x_t of the reverse process at parameter t
 *   ood_score, ood_flag    FP32 / BOOL [-1]    the manifest's primary OOD score and its calibrated
 *                                              flag (only models with OOD thresholds)
 */
import type { ModelDetail } from '../schemas/model.schema';
import type { InferOutput } from '../ml/ml.service';
import { V2Datatype, V2MetadataTensor, V2ModelMetadata } from './v2.schemas';

/** Models are ONNX graphs run by this project's PRG pipeline ("<project>_<format>"). */
export const V2_PLATFORM = 'prg_onnx';

export const V2_INPUTS = {
  image: 'FP32',
  pixels: 'UINT8',
  image_bytes: 'BYTES',
} as const satisfies Record<string, V2Datatype>;
export type V2InputName = keyof typeof V2_INPUTS;

/** Each output and the quantity of the ML boundary's `infer` it comes from. */
export const V2_OUTPUTS = {
  logits: 'logits',
  probabilities: 'probabilities',
  features: 'features',
  ood_score: 'ood',
  ood_flag: 'ood',
} as const satisfies Record<string, InferOutput>;
export type V2OutputName = keyof typeof V2_OUTPUTS;

export function isInputName(name: string): name is V2InputName {
  return Object.hasOwn(V2_INPUTS, name);
}

/** The primary OOD score with a calibrated threshold, if the model has one. */
export function primaryOodScore(m: ModelDetail): string | null {
  const p = m.ood?.primary;
  return p && m.ood && p in m.ood.scores ? p : null;
}

export function inputTensors(m: ModelDetail): V2MetadataTensor[] {
  const { channels: c, height: h, width: w } = m.input;
  return [
    { name: 'image', datatype: V2_INPUTS.image, shape: [-1, c, h, w] },
    { name: 'pixels', datatype: V2_INPUTS.pixels, shape: [-1, c, h, w] },
    { name: 'image_bytes', datatype: V2_INPUTS.image_bytes, shape: [-1] },
  ];
}

export function outputTensors(m: ModelDetail): V2MetadataTensor[] {
  const { channels: c, height: h, width: w } = m.input;
  const k = m.classes.length;
  const out: V2MetadataTensor[] = [
    { name: 'logits', datatype: 'FP32', shape: [-1, k] },
    { name: 'probabilities', datatype: 'FP32', shape: [-1, k] },
    { name: 'features', datatype: 'FP32', shape: [-1, c, h, w] },
  ];
  if (primaryOodScore(m))
    out.push(
      { name: 'ood_score', datatype: 'FP32', shape: [-1] },
      { name: 'ood_flag', datatype: 'BOOL', shape: [-1] },
    );
  return out;
}

export function modelMetadata(m: ModelDetail, versions: string[]): V2ModelMetadata {
  return {
    name: m.name,
    versions,
    platform: V2_PLATFORM,
    inputs: inputTensors(m),
    outputs: outputTensors(m),
  };
}
