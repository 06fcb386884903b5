/**
 * Shipping a recipe's classifier (issue 16, deliverable 1): the candidate that a complete run chose
 * on its validation split, with the test metric its eval stage recorded and its OOD fit, becomes
 * the model directory `prg-<dataset>` at the next version. Selection happened inside the recipe
 * (run.ts: validation images carved from the training split), so exporting chooses nothing.
 */
import { join } from 'node:path';
import { readManifest, readModelDir, writeModelDir } from '../model-dir/io';
import { Recipe } from './definitions';
import { RESULTS_FILE, RecipeResults } from './run';
import { readJson } from './run-state';

/** `prg-mnist` for a recipe trained on `mnist:train`. */
export function recipeModelName(r: Pick<Recipe, 'data'>): string {
  return `prg-${r.data.train.split(':')[0]}`;
}

/** The version after `v`: integers count up ("4" → "5"); other schemes need an explicit one. */
export function nextVersion(v: string): string {
  if (!/^\d+$/.test(v))
    throw new Error(`version "${v}" is not an integer: pass the new version (--model-version)`);
  return String(Number(v) + 1);
}

export interface ExportRecipeModelOptions {
  /** Default models/prg-<dataset>. */
  out?: string;
  /** Replace an existing model directory there (its README and other extra files are kept). */
  overwrite?: boolean;
  /** Default: the existing model's version + 1, or "1". */
  version?: string;
}

/** Exports the chosen candidate of a complete run in `runDir`; returns the directory written. */
export async function exportRecipeModel(
  r: Recipe,
  runDir: string,
  o: ExportRecipeModelOptions = {},
): Promise<{ dir: string; name: string; version: string; chosen: number }> {
  const results = await readJson<RecipeResults>(join(runDir, RESULTS_FILE));
  if (!results) throw new Error(`${runDir} has no ${RESULTS_FILE}: run the recipe ${r.name} first`);
  if (results.recipe !== r.name)
    throw new Error(`${runDir} holds recipe ${results.recipe}, not ${r.name}`);
  if (!results.complete || !results.selection || results.testAccuracy === undefined)
    throw new Error(
      `${runDir}: recipe ${r.name} is not complete (rerun it with --resume until every stage is done)`,
    );
  const name = recipeModelName(r);
  const out = o.out ?? join('models', name);
  const existing = await readManifest(out).catch(() => undefined);
  if (existing && !o.overwrite)
    throw new Error(`${out} already holds ${existing.name}@${existing.version}: pass --force`);
  const version = o.version ?? (existing ? nextVersion(existing.version) : '1');

  const { chosen, validationAccuracy, rule } = results.selection;
  const src = await readModelDir(join(runDir, 'candidates', `${chosen}`));
  const candidate = results.settings.finetune.candidates[chosen];
  const manifest = {
    ...src.manifest,
    name,
    version,
    description:
      `recipe ${r.name} v${r.version}: fine-tuning candidate ${chosen} (learning rate ` +
      `${candidate.learningRate}, ${candidate.steps} steps), chosen by ${rule}; ` +
      `test accuracy ${results.testAccuracy.toFixed(4)}`,
    createdAt: new Date().toISOString(),
    provenance: {
      ...src.manifest.provenance,
      recipe: {
        name: r.name,
        version: r.version,
        runCommit: results.commit,
        chosen,
        validationAccuracy,
        rule,
      },
    },
  };
  const dir = await writeModelDir(out, { ...src, manifest }, { overwrite: o.overwrite });
  return { dir, name, version, chosen };
}
