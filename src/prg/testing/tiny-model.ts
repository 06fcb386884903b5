/**
 * Test fixture: a tiny random PRG model directory (a two-level U-Net with 8 base channels and a
 * tanh MLP head), valid against the manifest schema, small enough for unit tests to load and run
 * in milliseconds. Not trained: its predictions are arbitrary but deterministic for a seed.
 */
import { opsWithoutRule } from '../../engine/autodiff';
import { GraphBuilder } from '../../engine/onnx/builder';
import { Graph, attr, tensor } from '../../engine/onnx/types';
import { namespaced, paramNamesOf, withParamNames } from '../features';
import { ModelManifest, SolverName } from '../manifest';
import { writeModelWithFreshHead } from '../model-dir/fresh-head';
import { readManifest } from '../model-dir/io';
import { UNetConfig, buildVelocityNet } from '../nets';
import { BuiltNet } from '../nets/unet';

export interface TinyModelOptions {
  /** Number of classes (named "0", "1", ...) or the class names. Default 3. */
  classes?: number | string[];
  /** [C, H, W]; default [1, 8, 8]. H and W must be even (one downsampling). */
  inputShape?: [number, number, number];
  name?: string;
  version?: string;
  seed?: number;
  featurePool?: number | null;
  solver?: { name: SolverName; steps: number; tStar: number };
  hidden?: number;
  /** OOD thresholds for the manifest (scores that need no ood.json, e.g. msp, energy). */
  ood?: ModelManifest['ood'];
  /** Replace an existing directory. */
  overwrite?: boolean;
  /** Class-conditional: the velocity takes y ∈ [0, labels] (labels = the null class). */
  labels?: number;
  /** Add a LayerNormalization (no VJP rule) to the velocity: an inference-only flow. */
  inferenceOnly?: boolean;
  /** Write the velocity net with external data above this many bytes (tests use a tiny value). */
  externalDataAbove?: number;
}

/**
 * The U-Net with the options' extras: a label table read at y and added per channel (so each label
 * gives another velocity), and a LayerNormalization term. Parameters keep their names.
 */
function withExtras(net: BuiltNet<unknown>, o: TinyModelOptions, c: number): Graph {
  if (!o.labels && !o.inferenceOnly) return net.graph;
  const base = namespaced(withParamNames(net.graph, net.paramNames), 'unet/');
  const b = new GraphBuilder('tiny_velocity');
  const x = b.input('x', base.inputs[0].shape);
  const t = b.input('t', ['N']);
  let v = b.call(base, { x, t }, { prefix: 'unet' }).v;
  const extra: string[] = [];
  if (o.labels) {
    const y = b.input('y', ['N'], 'int64');
    const rows = o.labels + 1;
    const table = b.param(
      'label.table',
      tensor(
        'float32',
        [rows, c],
        Array.from({ length: rows * c }, (_, i) => ((i * 13) % 7) / 7 - 0.4),
      ),
    );
    v = b.add(v, b.reshape(b.gather(table, y, 0), [-1, c, 1, 1]));
    extra.push('label.table');
  }
  if (o.inferenceOnly) {
    const w = base.inputs[0].shape[3] as number;
    const scale = b.param('ln.weight', tensor('float32', [w], Array(w).fill(0.1)));
    const bias = b.param('ln.bias', tensor('float32', [w], Array(w).fill(0)));
    const [ln] = b.op('LayerNormalization', [x, scale, bias], { axis: attr.i(-1) });
    v = b.add(v, ln);
    extra.push('ln.weight', 'ln.bias');
  }
  b.output(v, 'v');
  return withParamNames(b.build(), [...paramNamesOf(base), ...extra]);
}

/** The U-Net shape of the fixture (preset XS with everything shrunk). */
export const TINY_UNET: Partial<UNetConfig> = {
  baseChannels: 8,
  channelMult: [1, 2],
  numResBlocks: 1,
  attentionResolutions: [],
  groups: 4,
  timeEmbedDim: 8,
  timeHiddenDim: 16,
  // A random net with DDPM-like time frequencies (×1000) oscillates fast in t, which makes solver
  // comparisons in tests need hundreds of steps; a trained net is smooth in t, so is this one.
  timeScale: 1,
  // Random (not zero) output layers, so the velocity is non-trivial in tests.
  zeroInit: false,
};

export async function createTinyModel(
  dir: string,
  o: TinyModelOptions = {},
): Promise<{ dir: string; manifest: ModelManifest }> {
  const inputShape = o.inputShape ?? [1, 8, 8];
  const classes =
    typeof o.classes === 'object'
      ? o.classes
      : Array.from({ length: o.classes ?? 3 }, (_, i) => String(i));
  const seed = o.seed ?? 1;
  const hidden = o.hidden ?? 16;
  const featurePool = o.featurePool === undefined ? null : o.featurePool;
  const net = buildVelocityNet({
    kind: 'unet',
    preset: 'XS',
    inputShape,
    seed,
    overrides: TINY_UNET,
  });
  const [c, h, w] = inputShape;
  const velocity = withExtras(net, o, c);
  const untrainableOps = opsWithoutRule(velocity, ['v'], [...paramNamesOf(velocity), 'x']);
  const out = await writeModelWithFreshHead(
    dir,
    {
      name: o.name ?? 'tiny',
      version: o.version ?? '0.0.1',
      description: 'random tiny test model (untrained)',
      velocity: {
        kind: 'unet',
        preset: 'XS',
        params: net.params,
        config: net.config as unknown as Record<string, unknown>,
        ...(o.labels ? { labels: { classes: o.labels, nullClass: o.labels } } : {}),
        ...(untrainableOps.length ? { untrainableOps } : {}),
      },
      interpolant: 'icfm',
      solver: o.solver ?? { name: 'euler', steps: 3, tStar: 0.5 },
      input: { channels: c, height: h, width: w, normalization: 'minus-one-one' },
      featurePool,
      classes,
      ...(o.ood ? { ood: o.ood } : {}),
      provenance: {
        dataset: 'random',
        command: 'createTinyModel (test fixture)',
        gitCommit: 'n/a',
      },
    },
    velocity,
    { kind: 'mlp', hidden, seed },
    { overwrite: o.overwrite, externalDataAbove: o.externalDataAbove },
  );
  return { dir: out, manifest: await readManifest(out) };
}
