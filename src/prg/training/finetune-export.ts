/**
 * The fine-tuned model as a model directory: the current weights written into copies of the
 * nets, a manifest recording its parent, data, command and hyperparameters (provenance) and, when
 * it was measured on a named held-out split, its accuracy with the command that reproduces it.
 * writeModelDir writes the directory to a temp path and renames it into place.
 */
import { Graph } from '../../engine/onnx/types';
import { ParamStore } from '../../engine/runtime/params';
import { AugmentOptions } from '../data';
import { HEAD_PREFIX, withParamNames } from '../features';
import { ModelManifest } from '../manifest';
import { LoadedModelDir, writeModelDir } from '../model-dir/io';
import { gitCommit } from '../model-dir/provenance';
import { FineTuneNets } from './finetune-nets';
import { ResolvedHyperparameters } from './hyperparameters';

export interface FineTuneExportOptions {
  outputDir: string;
  name: string;
  version: string;
  /** The training dataset spec (recorded). */
  dataset: string;
  command: string;
  noPretrain?: boolean;
  augment?: AugmentOptions;
}

/** Parameters of `g` (names as in `store`, minus `prefix`) written into a copy of `g`. */
function exportNet(g: Graph, store: ParamStore, names: string[], prefix: string): Graph {
  const sub = new ParamStore();
  for (const n of names) {
    const p = store.get(prefix + n);
    sub.set(n, p.dims, p.data);
  }
  return withParamNames(sub.writeTo(g), names);
}

/** The current weights of `nets` as a loaded model directory (for evaluation and export). */
export function fineTunedModel(
  base: ModelManifest,
  nets: FineTuneNets,
  hp: ResolvedHyperparameters,
  pool: number | null,
  o: FineTuneExportOptions,
  stage: Pick<LoadedModelDir, 'encoder' | 'decoder'> = {},
): LoadedModelDir {
  const params = nets.params;
  const manifest: ModelManifest = {
    ...base,
    name: o.name,
    version: o.version,
    description: `fine-tuned from ${base.name}@${base.version} on ${o.dataset}`,
    createdAt: new Date().toISOString(),
    architecture: {
      velocity: { ...base.architecture.velocity },
      head: {
        ...base.architecture.head,
        hidden: nets.hidden,
        params: nets.headNames.reduce((s, n) => s + params.get(HEAD_PREFIX + n).data.length, 0),
      },
    },
    solver: { name: hp.solver, steps: hp.steps, tStar: hp.tStar },
    featurePool: pool,
    classes: nets.classes,
    files: {
      velocity: 'velocity.onnx',
      head: 'head.onnx',
      // The VAE stage is frozen: its graphs go into the fine-tuned model unchanged.
      ...(base.files.encoder ? { encoder: base.files.encoder } : {}),
      ...(base.files.decoder ? { decoder: base.files.decoder } : {}),
    },
    metrics: {},
    ood: undefined,
    provenance: {
      dataset: o.dataset,
      command: o.command,
      gitCommit: gitCommit(),
      parent: `${base.name}@${base.version}`,
      phase: 'finetune',
      gradientMode: hp.gradientMode,
      lambdaFlow: hp.lambda,
      labelSmoothing: hp.labelSmoothing,
      freezeFlow: hp.freezeFlow,
      noPretrain: o.noPretrain ?? false,
      epochs: hp.epochs,
      batchSize: hp.batchSize,
      learningRate: hp.learningRate,
      weightDecay: hp.weightDecay,
      ...(o.augment ? { augment: o.augment } : {}),
    },
  };
  delete manifest.ood;
  return {
    dir: o.outputDir,
    manifest,
    velocity: exportNet(nets.velocity, params, nets.velocityNames, ''),
    head: exportNet(nets.head, params, nets.headNames, HEAD_PREFIX),
    encoder: stage.encoder,
    decoder: stage.decoder,
  };
}

/** A held-out accuracy to record in the manifest, with how to measure it again. */
export interface MeasuredAccuracy {
  value: number;
  evalDataset: string;
  evalLimit?: number;
  n: number;
}

/** Writes `model` to its directory (replacing it when `overwrite`); returns the directory. */
export function writeFineTunedModel(
  model: LoadedModelDir,
  accuracy: MeasuredAccuracy | undefined,
  overwrite: boolean | undefined,
): Promise<string> {
  if (accuracy)
    model.manifest.metrics.accuracy = {
      value: accuracy.value,
      command: `prg eval --model ${model.dir} --data ${accuracy.evalDataset}${
        accuracy.evalLimit ? ` --limit ${accuracy.evalLimit}` : ''
      } --json`,
      data: accuracy.evalDataset,
      n: accuracy.n,
      measuredAt: new Date().toISOString(),
    };
  return writeModelDir(
    model.dir,
    {
      manifest: model.manifest,
      velocity: model.velocity,
      head: model.head,
      encoder: model.encoder,
      decoder: model.decoder,
    },
    { overwrite },
  );
}
