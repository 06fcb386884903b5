/**
 * `mahalanobis_deep`: a tied-covariance Mahalanobis score (mahalanobis.ts) on features taken from
 * several depths of the model at once, in the spirit of Lee et al. 2018's feature ensemble:
 *
 *   f(x) = [ pool(blocks of v(x_0, 0)),  pool(blocks of v(x_{t*}, t*)),  tanh hidden of the head ]
 *
 * where "blocks" are the outputs of the velocity U-Net's residual blocks (the Add after each
 * `<block>.conv2` Conv), each global-average-pooled over space to one value per channel, the net
 * evaluated at the image itself (t = 0) and at the head's input x_{t*} (paper §3.1). For the
 * shipped XS U-Net that is 2 × 384 + 256 = 1024 values.
 *
 * Why: the head's input x_{t*} is still image-like, so a distance on it is dominated by background
 * pixels (docs/ood.md: plain Mahalanobis on x_{t*} ranks noise and MNIST digits very differently
 * depending on the direction), and the head's hidden layer sees only what the classifier needs.
 * The pooled block outputs summarise, per channel, what the flow's own features respond to —
 * texture, strokes, contrast — at several scales, which an outlier of any kind is unlikely to match
 * everywhere. Cost: two extra velocity-net evaluations per image.
 *
 * The features are standardised per dimension before the fit (so Ledoit–Wolf's shrinkage target
 * (tr S / D)·I is not dominated by the blocks with the largest activations), and the
 * standardisation is folded back into the stored Gaussian: with z = (f − m)/s,
 * (z − μ_z)ᵀ Σ_z⁻¹ (z − μ_z) = ‖W_z diag(1/s)(f − (m + s ⊙ μ_z))‖², so ood.json stores an ordinary
 * TiedGaussian on f (means m + s ⊙ μ_z, whitening W_z·diag(1/s), still lower-triangular).
 */
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { pruneGraph } from '../../engine/onnx/graph-utils';
import { Graph } from '../../engine/onnx/types';
import { headHiddenGraph } from './head-hidden';
import { TiedGaussian, appendSquaredDistances } from './mahalanobis';

/** What ood.json records about the deep features (stats.ts `deep`). */
export interface DeepFeatureSpec {
  /** Velocity-graph values pooled per channel, in order (the residual blocks' outputs). */
  blocks: string[];
  /** Channels of each block. */
  channels: number[];
  /** Times the velocity net is evaluated at: 0 (the image) and t* (x_{t*}). */
  times: number[];
  /** The head's tanh hidden layer is appended (its width), or 0. */
  hidden: number;
}

/**
 * The residual blocks' outputs of a U-Net velocity graph: for every Conv whose weight is named
 * `….conv2.weight`, the Add that consumes its output (the skip connection). Empty for nets
 * without such blocks (then the model gets no deep score).
 */
export function residualBlockOutputs(velocity: Graph): { name: string; channels: number }[] {
  const out: { name: string; channels: number }[] = [];
  for (const c of velocity.nodes) {
    if (c.op !== 'Conv' || !/\.conv2\.weight$/.test(c.inputs[1] ?? '')) continue;
    const add = velocity.nodes.find((n) => n.op === 'Add' && n.inputs.includes(c.outputs[0]));
    const info = add && velocity.values.get(add.outputs[0]);
    const ch = info?.shape[1];
    if (add && info && info.shape.length === 4 && typeof ch === 'number')
      out.push({ name: add.outputs[0], channels: ch });
  }
  return out;
}

/** The deep-feature layout of a model (throws when its velocity net has no residual blocks). */
export function deepFeatureSpec(velocity: Graph, head: Graph, tStar: number): DeepFeatureSpec {
  const blocks = residualBlockOutputs(velocity);
  if (!blocks.length)
    throw new Error(`velocity ${velocity.name}: no residual blocks (…conv2 + skip) to pool`);
  const hid = headHiddenGraph(head).outputs[0].shape[1];
  return {
    blocks: blocks.map((b) => b.name),
    channels: blocks.map((b) => b.channels),
    times: [0, tStar],
    hidden: typeof hid === 'number' ? hid : 0,
  };
}

/** Width of the deep feature vector. */
export function deepFeatureDim(s: DeepFeatureSpec): number {
  return s.times.length * s.channels.reduce((a, b) => a + b, 0) + s.hidden;
}

/** The velocity graph with output `pooled` [N, Σ channels]: each block's spatial mean. */
export function pooledBlocksGraph(velocity: Graph, blocks: string[]): Graph {
  const b = GraphBuilder.from(velocity);
  const pooled = blocks.map((name) => b.flatten(b.globalAveragePool(b.value(name)), 1));
  b.output(pooled.length === 1 ? pooled[0] : b.concat(pooled, 1), 'pooled');
  return pruneGraph(b.build(), ['pooled']);
}

/**
 * Appends the deep features to `b`: inputs `images` [N, C, H, W] (the image, t = 0), `xt`
 * [N, C·H·W] (x_{t*}, flattened) and `features` (the head's input, for the hidden layer; the same
 * array as `xt` when the model does not pool). Returns the [N, dim] feature value.
 */
function appendDeepFeatures(
  b: GraphBuilder,
  velocity: Graph,
  head: Graph,
  spec: DeepFeatureSpec,
  shape: [number, number, number],
): Value {
  const images = b.input('images', ['N', ...shape]);
  const D = shape[0] * shape[1] * shape[2];
  const xt = b.input('xt', ['N', D]);
  const pooled = pooledBlocksGraph(velocity, spec.blocks);
  // t as an [N] vector: the per-image mean of 0·x (keeps N symbolic), plus the time.
  const zeros = b.reduceMean(b.mul(b.flatten(images, 1), 0), [1], false);
  const xtImages = b.reshape(xt, [-1, ...shape]);
  const parts = spec.times.map(
    (t, i) =>
      b.call(pooled, { x: i === 0 ? images : xtImages, t: b.add(zeros, t) }, { prefix: `t${i}` })
        .pooled,
  );
  if (spec.hidden) {
    const hg = headHiddenGraph(head);
    const feats = b.input('features', ['N', hg.inputs[0].shape[1]]);
    parts.push(b.call(hg, { features: feats }, { prefix: 'head' }).hidden);
  }
  return b.concat(parts, 1);
}

/** The deep features alone (for the fit): output `deep` [N, deepFeatureDim(spec)]. */
export function deepFeatureGraph(
  velocity: Graph,
  head: Graph,
  spec: DeepFeatureSpec,
  shape: [number, number, number],
): Graph {
  const b = new GraphBuilder('deep_features');
  b.output(appendDeepFeatures(b, velocity, head, spec, shape), 'deep');
  return b.build();
}

/**
 * The `mahalanobis_deep` scoring graph: the deep features, then −min_k ‖W f − W μ_k‖² as in
 * mahalanobisGraph. Outputs `score` [N] and `deep` [N, dim].
 */
export function deepMahalanobisGraph(
  velocity: Graph,
  head: Graph,
  spec: DeepFeatureSpec,
  shape: [number, number, number],
  g: TiedGaussian,
): Graph {
  if (g.dim !== deepFeatureDim(spec))
    throw new Error(`mahalanobis_deep: Gaussian of dim ${g.dim}, features ${deepFeatureDim(spec)}`);
  const b = new GraphBuilder('mahalanobis_deep');
  const f = appendDeepFeatures(b, velocity, head, spec, shape);
  const d2 = appendSquaredDistances(b, f, g, '');
  b.output(b.reduceMax(b.neg(d2), [1], false), 'score');
  b.output(f, 'deep');
  return b.build();
}

/** Per-dimension mean and standard deviation of [n, dim] rows (sd 1 where a feature is constant). */
export function columnStats(x: Float32Array, n: number, dim: number) {
  const mean = new Float64Array(dim);
  const sd = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) mean[d] += x[i * dim + d];
  for (let d = 0; d < dim; d++) mean[d] /= n;
  for (let i = 0; i < n; i++)
    for (let d = 0; d < dim; d++) sd[d] += (x[i * dim + d] - mean[d]) ** 2;
  for (let d = 0; d < dim; d++) {
    const s = Math.sqrt(sd[d] / Math.max(1, n - 1));
    sd[d] = s > 0 ? s : 1;
  }
  return { mean, sd };
}

/** (x − mean)/sd row by row. */
export function standardise(
  x: Float32Array,
  n: number,
  dim: number,
  mean: ArrayLike<number>,
  sd: ArrayLike<number>,
) {
  const z = new Float32Array(n * dim);
  for (let i = 0; i < n; i++)
    for (let d = 0; d < dim; d++) z[i * dim + d] = (x[i * dim + d] - mean[d]) / sd[d];
  return z;
}

/**
 * A Gaussian fitted on standardised z = (f − mean)/sd, expressed on f (module comment): means
 * mean + sd ⊙ μ_z, whitening W_z·diag(1/sd).
 */
export function unstandardiseGaussian(
  gz: TiedGaussian,
  mean: ArrayLike<number>,
  sd: ArrayLike<number>,
): TiedGaussian {
  const D = gz.dim;
  const means = new Float64Array(gz.means.length);
  for (let k = 0; k < gz.classes; k++)
    for (let d = 0; d < D; d++) means[k * D + d] = mean[d] + sd[d] * gz.means[k * D + d];
  const whiten = new Float64Array(D * D);
  for (let i = 0; i < D; i++)
    for (let j = 0; j <= i; j++) whiten[i * D + j] = gz.whiten[i * D + j] / sd[j];
  return { ...gz, means, whiten };
}
