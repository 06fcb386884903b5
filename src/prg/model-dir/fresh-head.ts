/**
 * A new model directory around a velocity net that has no head yet: pretraining's export, an
 * imported net and the test fixtures all need the same thing, a fresh (untrained) head sized from
 * the input and feature pooling, and a manifest whose head, files and metrics follow from it.
 * One place builds them, so the head a fine-tune starts from is the same whichever way the flow
 * came in.
 */
import { Graph } from '../../engine/onnx/types';
import { withParamNames } from '../features';
import { HeadKind, buildHead } from '../heads';
import { MANIFEST_SCHEMA, ModelManifest } from '../manifest';
import { featureDim } from './graph-check';
import { DEFAULT_FILES, WriteModelDirOptions, writeModelDir } from './io';

/** The manifest fields the caller knows; the rest (head, files, metrics, dates) is filled in. */
export type HeadlessManifest = Omit<
  ModelManifest,
  'schema' | 'createdAt' | 'architecture' | 'files' | 'metrics'
> & { velocity: ModelManifest['architecture']['velocity'] };

export interface FreshHead {
  kind: HeadKind;
  hidden: number;
  /** Seeds the head's initialisation (PyTorch's default uniform, src/prg/heads). */
  seed: number;
}

export async function writeModelWithFreshHead(
  dir: string,
  m: HeadlessManifest,
  velocity: Graph,
  h: FreshHead,
  opts: WriteModelDirOptions = {},
): Promise<string> {
  const head = buildHead({
    kind: h.kind,
    inputDim: featureDim(m),
    hidden: h.hidden,
    classes: m.classes.length,
    seed: h.seed,
  });
  const { velocity: velocityArchitecture, ...rest } = m;
  const manifest: ModelManifest = {
    schema: MANIFEST_SCHEMA,
    ...rest,
    createdAt: new Date().toISOString(),
    architecture: {
      velocity: velocityArchitecture,
      head: { kind: h.kind, hidden: h.hidden, params: head.params, config: { ...head.config } },
    },
    files: { velocity: DEFAULT_FILES.velocity, head: DEFAULT_FILES.head },
    metrics: {},
  };
  return writeModelDir(
    dir,
    { manifest, velocity, head: withParamNames(head.graph, head.paramNames) },
    opts,
  );
}
