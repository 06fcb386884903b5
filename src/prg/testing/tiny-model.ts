/**
 * Test fixture: a tiny random PRG model directory (a two-level U-Net with 8 base channels and a
 * tanh MLP head), valid against the manifest schema, small enough for unit tests to load and run
 * in milliseconds. Not trained: its predictions are arbitrary but deterministic for a seed.
 */
import { buildHead } from '../heads';
import { MANIFEST_SCHEMA, ModelManifest, SolverName } from '../manifest';
import { featureDim } from '../model-dir/graph-check';
import { readManifest, writeModelDir } from '../model-dir/io';
import { UNetConfig, buildVelocityNet } from '../nets';

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
  /** Write the velocity net with external data above this many bytes (tests use a tiny value). */
  externalDataAbove?: number;
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
  const input = { channels: c, height: h, width: w, normalization: 'minus-one-one' as const };
  const D = featureDim({ input, featurePool });
  const head = buildHead({ kind: 'mlp', inputDim: D, hidden, classes: classes.length, seed });
  const manifest: ModelManifest = {
    schema: MANIFEST_SCHEMA,
    name: o.name ?? 'tiny',
    version: o.version ?? '0.0.1',
    description: 'random tiny test model (untrained)',
    createdAt: new Date().toISOString(),
    architecture: {
      velocity: {
        kind: 'unet',
        preset: 'XS',
        params: net.params,
        config: net.config as unknown as Record<string, unknown>,
      },
      head: { kind: 'mlp', hidden, params: head.params, config: { ...head.config } },
    },
    interpolant: 'icfm',
    solver: o.solver ?? { name: 'euler', steps: 3, tStar: 0.5 },
    input,
    featurePool,
    classes,
    files: { velocity: 'velocity.onnx', head: 'head.onnx' },
    metrics: {},
    ...(o.ood ? { ood: o.ood } : {}),
    provenance: { dataset: 'random', command: 'createTinyModel (test fixture)', gitCommit: 'n/a' },
  };
  const out = await writeModelDir(
    dir,
    { manifest, velocity: net.graph, head: head.graph },
    { overwrite: o.overwrite, externalDataAbove: o.externalDataAbove },
  );
  return { dir: out, manifest: await readManifest(out) };
}
