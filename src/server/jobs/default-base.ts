/**
 * The base model of a fine-tune job that names none (issue 16): the pretrained flow of the
 * default model's training data, `flow-<dataset>` (models/flow-mnist, models/flow-fashion-mnist:
 * EMA flow-matching weights and a fresh head, made by `prg recipe export-flow`), when it is
 * installed; else the default model itself. A flow that was never fine-tuned on its own classes
 * is the paper's starting point for a new task (§3.2); "auto" gives the upload a new head either
 * way. docs/training.md "Which base model for an upload" says which base suits which data.
 */
import type { ModelManifest } from '../../prg/manifest';

/** `flow-<name>` for a model trained on `<name>:<split>` (null when it records no dataset). */
export function baseFlowName(m: ModelManifest): string | null {
  const ds = m.provenance?.dataset;
  const name = typeof ds === 'string' ? ds.split(':')[0] : '';
  return /^[A-Za-z0-9._-]+$/.test(name) ? `flow-${name}` : null;
}

export interface BaseCandidate {
  id: string;
  dir: string;
  manifest: ModelManifest;
}

/** A model written by pretraining: a flow with an untrained head, not a classifier. */
export function isPretrainedFlow(m: ModelManifest): boolean {
  return m.provenance?.phase === 'pretrain';
}

/**
 * The job's default base: the default model's `flow-<dataset>` when `find` has it and it is a
 * pretrained flow (a model fine-tuned under that name would not be), else the default model.
 */
export function defaultFineTuneBase<T extends BaseCandidate>(
  defaultModel: T,
  find: (ref: string) => T | undefined,
): T {
  const flow = baseFlowName(defaultModel.manifest);
  if (!flow || flow === defaultModel.manifest.name) return defaultModel;
  const found = find(flow);
  return found && isPretrainedFlow(found.manifest) ? found : defaultModel;
}

/**
 * The name of a job's new model when the job gives none: the base's name (a new version of it),
 * except for a pretrained flow, whose name stays the flow's: `prg-<dataset id>` then, so the
 * uploads' classifiers never become the latest `flow-<dataset>` (the next job's default base).
 */
export function fineTuneOutputName(
  base: ModelManifest,
  given: string | null | undefined,
  datasetId: string,
): string {
  if (given) return given;
  return isPretrainedFlow(base) ? `prg-${datasetId}` : base.name;
}
