/**
 * Shipping a pretrained, not fine-tuned flow as a model directory (issue 16, deliverable 2): a
 * recipe's `flow/` (the EMA weights of flow matching, pretrain.ts, and a freshly initialised head)
 * renamed `flow-<dataset>`, the default base of fine-tune jobs (src/server/jobs/default-base.ts).
 * Only a finished pretraining is exported: the recipe's state must list the stage as done.
 */
import { join } from 'node:path';
import { readModelDir, writeModelDir } from '../model-dir/io';
import { Recipe } from './definitions';
import { STATE_FILE, readJson } from './run-state';

/** `flow-mnist` for a recipe trained on `mnist:train`. */
export function baseFlowModelName(r: Pick<Recipe, 'data'>): string {
  return `flow-${r.data.train.split(':')[0]}`;
}

export interface ExportBaseFlowOptions {
  /** A model directory written by pretraining (provenance.phase "pretrain"). */
  flowDir: string;
  out: string;
  name: string;
  overwrite?: boolean;
}

/** Copies the pretrained flow to `out` under `name` (temp path, then rename); returns `out`. */
export async function exportBaseFlow(o: ExportBaseFlowOptions): Promise<string> {
  const m = await readModelDir(o.flowDir);
  const phase = m.manifest.provenance?.phase;
  if (phase !== 'pretrain')
    throw new Error(
      `${o.flowDir} is not a pretrained flow (provenance.phase ${JSON.stringify(phase ?? null)}, expected "pretrain")`,
    );
  const manifest = {
    ...m.manifest,
    name: o.name,
    description:
      `pretrained flow (EMA weights of ${m.manifest.interpolant} flow matching on ` +
      `${m.manifest.provenance.dataset}, ${m.manifest.name}@${m.manifest.version}) with an ` +
      'untrained head: a base for fine-tuning, not a classifier',
    createdAt: new Date().toISOString(),
    metrics: {},
  };
  delete manifest.ood;
  return writeModelDir(
    o.out,
    { manifest, velocity: m.velocity, head: m.head },
    { overwrite: o.overwrite },
  );
}

/** The recipe run's flow, checked finished (state.json), exported as `flow-<dataset>`. */
export async function exportRecipeFlow(
  r: Recipe,
  runDir: string,
  o: { out?: string; overwrite?: boolean } = {},
): Promise<string> {
  const state = await readJson<{ recipe: string; stages: Record<string, { done: boolean }> }>(
    join(runDir, STATE_FILE),
  );
  if (!state) throw new Error(`${runDir} has no ${STATE_FILE}: run the recipe ${r.name} first`);
  if (state.recipe !== r.name)
    throw new Error(`${runDir} holds recipe ${state.recipe}, not ${r.name}`);
  if (!state.stages.pretrain?.done)
    throw new Error(`${runDir}: the pretrain stage is not finished (rerun with --resume)`);
  const name = baseFlowModelName(r);
  return exportBaseFlow({
    flowDir: join(runDir, 'flow'),
    out: o.out ?? join('models', name),
    name,
    overwrite: o.overwrite,
  });
}
