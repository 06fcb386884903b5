/**
 * Classification heads: input `features` [N, D], output `logits` [N, classes].
 *
 * - 'mlp' (paper §3.1, "Classifier Design": a two-layer MLP with tanh):
 *     Linear(D, hidden) → tanh → Linear(hidden, classes)
 * - 'pooled' (the released code, opendilab/PRG prg/models/generativeClassify/unet_*.py,
 *   `classifyHead`): x_t is AdaptiveAvgPool2d'd to 16×16 and flattened (3·16·16 = 768 for
 *   CIFAR-10; 32×32 → 3072 for ImageNet-64), then
 *     LayerNorm(D) → Linear(D, hidden) → tanh → Linear(hidden, classes, bias = False)
 *   with hidden = 768 (CIFAR/Tiny-ImageNet) or 2048 (ImageNet). The pooling lives in
 *   `poolFeatures` (the feature extractor's graph), so this head takes D = C·n·n.
 * Initialisation is PyTorch's default (U(±1/√fan_in) for Linear, LayerNorm weight 1 / bias 0).
 */
import { GraphBuilder } from '../../engine/onnx/builder';
import { Graph } from '../../engine/onnx/types';
import { Params, applyLinear, assertInt, layerNorm, linearParams } from '../nets/layers';

export { poolFeatures, adaptivePoolMatrix } from './pool';

export type HeadKind = 'mlp' | 'pooled';

export interface HeadConfig {
  kind: HeadKind;
  inputDim: number;
  hidden: number;
  classes: number;
  seed: number;
  /** Fixed batch; omitted = symbolic 'N'. */
  batch?: number;
}

export interface BuiltHead {
  graph: Graph;
  params: number;
  paramNames: string[];
  config: HeadConfig;
}

export function buildHead(cfg: HeadConfig): BuiltHead {
  assertInt(cfg.inputDim, 'head inputDim');
  assertInt(cfg.hidden, 'head hidden');
  assertInt(cfg.classes, 'head classes');
  if (cfg.batch !== undefined) assertInt(cfg.batch, 'head batch');
  if (cfg.kind !== 'mlp' && cfg.kind !== 'pooled')
    throw new Error(`unknown head kind ${String(cfg.kind)} (have mlp, pooled)`);
  const b = new GraphBuilder(`head_${cfg.kind}`);
  const p = new Params(b, cfg.seed);
  let h = b.input('features', [cfg.batch ?? 'N', cfg.inputDim]);
  if (cfg.kind === 'pooled') h = layerNorm(p, 'norm', h, true, 1e-5);
  h = b.tanh(applyLinear(b, h, linearParams(p, 'fc1', cfg.inputDim, cfg.hidden)));
  const fc2 = linearParams(p, 'fc2', cfg.hidden, cfg.classes, { bias: cfg.kind === 'mlp' });
  b.output(applyLinear(b, h, fc2), 'logits');
  b.metadata['prg.head'] = cfg.kind;
  b.metadata['prg.config'] = JSON.stringify(cfg);
  return { graph: b.build(), params: p.count, paramNames: [...p.names], config: cfg };
}
