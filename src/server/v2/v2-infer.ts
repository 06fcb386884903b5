/**
 * An Open Inference Protocol `infer` request ⇄ the ML boundary's `infer`: the input tensor
 * becomes the request's images, the requested outputs the quantities to compute; the answer
 * becomes named output tensors (JSON data, or binary data after the JSON object).
 */
import { badRequest } from '../common/errors';
import { ImageInput } from '../ml/image-input';
import { InferArgs, InferResult } from '../ml/ml.service';
import type { ModelDetail } from '../schemas/model.schema';
import { sliceBinary } from './v2-body';
import {
  inputTensors,
  isInputName,
  outputTensors,
  V2_INPUTS,
  V2_OUTPUTS,
  V2InputName,
  V2OutputName,
} from './v2-model';
import {
  boolToBinary,
  bytesFromBinary,
  elementCount,
  flattenJson,
  fp32FromBinary,
  fp32FromJson,
  fp32ToBinary,
  stringsFromJson,
  uint8FromBinary,
  uint8FromJson,
} from './v2-tensors';
import { V2InferRequest, V2InferResponse, V2RequestInput, V2ResponseOutput } from './v2.schemas';

export interface RequestedOutput {
  name: V2OutputName;
  binary: boolean;
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** The tensor's `binary_data_size` parameter (binary tensor extension), if it has one. */
function binarySize(inp: V2RequestInput): number | undefined {
  const n = inp.parameters?.binary_data_size;
  if (n === undefined) return undefined;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0)
    throw badRequest(
      'INVALID_BINARY_DATA',
      `input "${inp.name}": binary_data_size must be a byte count, got ${JSON.stringify(n)}`,
    );
  return n;
}

/** The images of the request: one input tensor (image, pixels or image_bytes), split by batch. */
export function readInputs(req: V2InferRequest, binary: Buffer, m: ModelDetail): ImageInput[] {
  const blobs = sliceBinary(binary, req.inputs.map(binarySize));
  const declared = inputTensors(m);
  const known = declared.map((t) => `${t.name} (${t.datatype})`).join(', ');
  for (const inp of req.inputs)
    if (!isInputName(inp.name))
      throw badRequest(
        'UNKNOWN_INPUT',
        `unknown input "${inp.name}"; model ${m.id} takes one of ${known}`,
      );
  if (req.inputs.length !== 1)
    throw badRequest(
      'INVALID_INPUTS',
      `${req.inputs.length} inputs (${req.inputs.map((i) => i.name).join(', ')}); send exactly one of ${known}`,
    );
  const [inp] = req.inputs;
  const [blob] = blobs;
  const name = inp.name as V2InputName;
  const label = `input "${name}"`;

  const datatype = V2_INPUTS[name];
  if (inp.datatype !== datatype) {
    const other = declared.find((t) => t.datatype === inp.datatype);
    throw badRequest(
      'INVALID_DATATYPE',
      `${label} is ${datatype}, got ${JSON.stringify(inp.datatype)}` +
        (other ? `; ${inp.datatype} data goes in input "${other.name}"` : ''),
    );
  }

  const shape = inp.shape;
  const want = declared.find((t) => t.name === name)!.shape;
  if (shape.length !== want.length || want.some((d, i) => d !== -1 && d !== shape[i]))
    throw badRequest('INVALID_SHAPE', `${label}: shape ${fmt(shape)} does not match ${fmt(want)}`);
  const n = shape[0];
  if (n < 1)
    throw badRequest('INVALID_SHAPE', `${label}: batch size ${n}; send at least one image`);

  if ((blob === undefined) === (inp.data === undefined))
    throw badRequest(
      'INVALID_TENSOR_DATA',
      blob === undefined
        ? `${label}: no data (give "data", or binary data with parameter binary_data_size)`
        : `${label}: both "data" and binary_data_size; give one`,
    );

  const per = elementCount(shape.slice(1));
  const split = <T extends { subarray(a: number, b: number): T }>(v: T) =>
    Array.from({ length: n }, (_, i) => v.subarray(i * per, (i + 1) * per));
  const item = (i: number) => `${name}[${i}]`;
  switch (name) {
    case 'image': {
      const v = blob
        ? fp32FromBinary(blob, shape, label)
        : fp32FromJson(flattenJson(inp.data!, shape, label), label);
      return split(v).map((tensor, i) => ({ tensor, name: item(i) }));
    }
    case 'pixels': {
      const v = blob
        ? uint8FromBinary(blob, shape, label)
        : uint8FromJson(flattenJson(inp.data!, shape, label), label);
      return split(v).map((pixels, i) => ({ pixels, name: item(i) }));
    }
    case 'image_bytes':
      return blob
        ? bytesFromBinary(blob, n, label).map((bytes, i) => ({ bytes, name: item(i) }))
        : stringsFromJson(flattenJson(inp.data!, shape, label), label).map((base64, i) => ({
            base64,
            name: item(i),
          }));
  }
}

/** The outputs asked for (default: every output of the model) and which go as binary data. */
export function requestedOutputs(req: V2InferRequest, m: ModelDetail): RequestedOutput[] {
  const available = outputTensors(m).map((t) => t.name);
  const all = req.parameters?.binary_data_output === true;
  const list = req.outputs?.length ? req.outputs : available.map((name) => ({ name }));
  const seen = new Set<string>();
  return list.map((o) => {
    if (!available.includes(o.name))
      throw badRequest(
        'UNKNOWN_OUTPUT',
        `unknown output "${o.name}"; model ${m.id} has ${available.join(', ')}`,
      );
    if (seen.has(o.name))
      throw badRequest('VALIDATION_FAILED', `output "${o.name}" is requested twice`);
    seen.add(o.name);
    const p: Record<string, unknown> =
      (o as { parameters?: Record<string, unknown> }).parameters ?? {};
    if ('classification' in p)
      throw badRequest(
        'VALIDATION_FAILED',
        `output "${o.name}": the classification extension is not supported; ask for "probabilities"`,
      );
    if (p.binary_data !== undefined && typeof p.binary_data !== 'boolean')
      throw badRequest('VALIDATION_FAILED', `output "${o.name}": binary_data must be a boolean`);
    return { name: o.name as V2OutputName, binary: (p.binary_data as boolean | undefined) ?? all };
  });
}

/** The ML boundary's arguments for the request. */
export function inferArgs(req: V2InferRequest, outputs: RequestedOutput[]): InferArgs {
  const p = req.parameters ?? {};
  return {
    outputs: [...new Set(outputs.map((o) => V2_OUTPUTS[o.name]))],
    ...(p.t !== undefined ? { t: p.t } : {}),
    ...(p.steps !== undefined ? { steps: p.steps } : {}),
    ...(p.solver !== undefined ? { solver: p.solver } : {}),
  };
}

function stack(rows: (Float32Array | undefined)[]): Float32Array {
  const per = rows[0]?.length ?? 0;
  const out = new Float32Array(rows.length * per);
  rows.forEach((r, i) => out.set(r!, i * per));
  return out;
}

/** The response object, and the binary parts that follow it (in output order). */
export function inferResponse(
  req: V2InferRequest,
  r: InferResult,
  outputs: RequestedOutput[],
  m: ModelDetail,
): { json: V2InferResponse; parts: Buffer[] } {
  const n = r.rows.length;
  const { channels: c, height: h, width: w } = m.input;
  const k = m.classes.length;
  const parts: Buffer[] = [];
  const tensor = (
    o: RequestedOutput,
    shape: number[],
    values: Float32Array | boolean[],
    parameters: Record<string, string | number> = {},
  ): V2ResponseOutput => {
    const bool = !(values instanceof Float32Array);
    const base = { name: o.name, shape, datatype: bool ? ('BOOL' as const) : ('FP32' as const) };
    if (!o.binary)
      return {
        ...base,
        ...(Object.keys(parameters).length ? { parameters } : {}),
        data: bool ? values : Array.from(values),
      };
    const bytes = bool ? boolToBinary(values) : fp32ToBinary(values);
    parts.push(bytes);
    return { ...base, parameters: { ...parameters, binary_data_size: bytes.length } };
  };
  const out = outputs.map((o) => {
    switch (o.name) {
      case 'logits':
        return tensor(o, [n, k], stack(r.rows.map((x) => x.logits)));
      case 'probabilities':
        return tensor(o, [n, k], stack(r.rows.map((x) => x.probabilities)));
      case 'features':
        return tensor(o, [n, c, h, w], stack(r.rows.map((x) => x.features)), { t: r.t! });
      case 'ood_score':
        return tensor(
          o,
          [n],
          Float32Array.from(r.rows, (x) => x.ood!.score),
          {
            score: r.oodScore!,
          },
        );
      case 'ood_flag':
        return tensor(
          o,
          [n],
          r.rows.map((x) => x.ood!.flagged),
          { score: r.oodScore! },
        );
    }
  });
  return {
    json: {
      model_name: r.model.manifest.name,
      model_version: r.model.manifest.version,
      ...(req.id !== undefined ? { id: req.id } : {}),
      outputs: out,
    },
    parts,
  };
}
