/**
 * Cross-check of a model directory's two ONNX graphs against its manifest (input/output names,
 * dtypes, image shape, feature width, class count), so a mismatched directory fails at load time
 * naming the file, not inside ORT on the first request.
 */
import { Graph, ValueInfo } from '../../engine/onnx/types';
import { ModelManifest } from '../manifest';

/** Width of the head's input: the flattened x_t, or C·n·n after pooling to n×n. */
export function featureDim(m: Pick<ModelManifest, 'input' | 'featurePool'>): number {
  const { channels: c, height: h, width: w } = m.input;
  return m.featurePool === null ? c * h * w : c * m.featurePool * m.featurePool;
}

function findIO(list: ValueInfo[], name: string): ValueInfo | undefined {
  return list.find((v) => v.name === name);
}

function dimOk(d: number | string, want: number): boolean {
  return typeof d === 'string' || d === want;
}

/** Check the two graphs against the manifest (names, dtypes, shapes). */
export function checkGraphs(m: ModelManifest, velocity: Graph, head: Graph, where: string): void {
  const { channels: c, height: h, width: w } = m.input;
  const vf = `${where}/${m.files.velocity}`;
  const x = findIO(velocity.inputs, 'x');
  const t = findIO(velocity.inputs, 't');
  const v = findIO(velocity.outputs, 'v');
  if (!x || !t || !v)
    throw new Error(
      `${vf}: the velocity net must have inputs x, t and output v; has inputs ` +
        `${velocity.inputs.map((i) => i.name).join(', ')} and outputs ` +
        `${velocity.outputs.map((o) => o.name).join(', ')}`,
    );
  const labels = m.architecture.velocity.labels;
  const y = findIO(velocity.inputs, 'y');
  if (velocity.inputs.length !== (labels ? 3 : 2) || (labels && !y))
    throw new Error(
      `${vf}: the velocity net must have exactly inputs x, t${labels ? ' and y' : ''} ` +
        `(parameters as initializers)${labels ? '' : '; an input y needs architecture.velocity.labels in the manifest'}; ` +
        `has ${velocity.inputs.map((i) => i.name).join(', ')}`,
    );
  if (y && (y.dtype !== 'int64' || y.shape.length !== 1))
    throw new Error(`${vf}: y is ${y.dtype}[${y.shape}], want int64 rank 1 (one label per image)`);
  const img = [c, h, w];
  for (const [info, rank] of [
    [x, 4],
    [v, 4],
    [t, 1],
  ] as const) {
    if (info.dtype !== 'float32' || info.shape.length !== rank)
      throw new Error(
        `${vf}: ${info.name} is ${info.dtype}[${info.shape}], want float32 rank ${rank}`,
      );
    if (rank === 4 && !info.shape.slice(1).every((d, i) => dimOk(d, img[i])))
      throw new Error(
        `${vf}: ${info.name} has shape [${info.shape}], the manifest's input is [N, ${img}]`,
      );
  }
  const hf = `${where}/${m.files.head}`;
  const feat = findIO(head.inputs, 'features');
  const logits = findIO(head.outputs, 'logits');
  if (!feat || !logits || head.inputs.length !== 1)
    throw new Error(
      `${hf}: the head must have one input features and an output logits; has inputs ` +
        `${head.inputs.map((i) => i.name).join(', ')} and outputs ` +
        `${head.outputs.map((o) => o.name).join(', ')}`,
    );
  const D = featureDim(m);
  if (feat.shape.length !== 2 || !dimOk(feat.shape[1], D))
    throw new Error(
      `${hf}: features has shape [${feat.shape}], but the manifest (input ${img.join('×')}, ` +
        `featurePool ${m.featurePool}) gives ${D} features`,
    );
  if (logits.shape.length !== 2 || !dimOk(logits.shape[1], m.classes.length))
    throw new Error(
      `${hf}: logits has shape [${logits.shape}], the manifest lists ${m.classes.length} classes`,
    );
}
