/**
 * `prg recipe run NAME [--resume] [--smoke]` and `prg recipe list` (src/prg/recipes): a named,
 * versioned recipe end to end, resumable after Ctrl-C, with a progress bar and ETA per stage.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AblationResults, runAblation } from '../prg/recipes/ablate';
import { ABLATIONS, ablationNamed } from '../prg/recipes/ablations';
import { exportRecipeFlow } from '../prg/recipes/base-flow';
import { exportRecipeModel } from '../prg/recipes/recipe-model';
import { RECIPES, recipeNamed } from '../prg/recipes/definitions';
import { RecipeResults, StageEvent, runRecipe } from '../prg/recipes/run';
import { OptionSpec, UsageError, flag, parse, str } from './args';
import { COMMON, session } from './common';
import { TrainingHooks, runTrainingCommand } from './training-run';

const OPTIONS: OptionSpec = {
  ...COMMON,
  resume: { type: 'boolean' },
  smoke: { type: 'boolean' },
  dir: { type: 'string' },
  units: { type: 'string' },
  out: { type: 'string' },
  force: { type: 'boolean' },
  log: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  'model-version': { type: 'string' },
};

export const RECIPE_HELP = `prg recipe run NAME [--resume] [--smoke] [--dir DIR] [options]
prg recipe list
prg recipe export-flow NAME [--dir DIR] [--out models/flow-DATASET] [--force]
prg recipe export-model NAME [--dir DIR] [--out models/prg-DATASET] [--force] [--model-version V]
  Runs recipe NAME end to end: pretrain → fine-tune each candidate → choose on a validation split
  carved from the training set → test accuracy → OOD fit. Writes DIR (default runs/recipes/NAME,
  runs/recipes/NAME-smoke with --smoke): state.json, results.json, log.jsonl, flow/,
  candidates/<i>/.
  Ctrl-C checkpoints the current stage (exit 130); --resume skips finished stages and continues.
  --smoke   a tiny version of the recipe that runs in seconds (checks the pipeline, not results)
  Ablations (ablate-<question>-<dataset>): every variant and seed, mean ± std in results.json's
  "ablation" block; pretrains, fine-tunes and evaluations with identical settings are shared
  across variants and recipes through --units DIR (default: ablation-units beside DIR).
  --log FILE.jsonl (default DIR/log.jsonl, which npm run report reads for training curves)
  --quiet --json --threads N --device cpu|cuda
  export-flow: the run's pretrained flow (EMA weights, untrained head; its pretrain stage must be
  finished) as the model directory flow-<dataset>, the default base of fine-tune jobs.
  export-model: a complete run's chosen candidate (selected on validation by the recipe, with its
  test metric and OOD fit) as prg-<dataset> at the next version (--force replaces the model there,
  keeping its README).`;

/**
 * The training log goes to DIR/log.jsonl unless --log names another file: `npm run report` draws
 * the training curves from the log beside a run's results.json, so a run without one has none.
 */
function withLog(v: ReturnType<typeof parse>, dir: string): ReturnType<typeof parse> {
  if (str(v, 'log') !== undefined) return v;
  mkdirSync(dir, { recursive: true });
  return { ...v, log: join(dir, 'log.jsonl') };
}

function ablationSummary(r: AblationResults): string {
  const pct = (x: number | null | undefined) => (x == null ? '—' : (100 * x).toFixed(2));
  return [
    `recipe ${r.recipe} v${r.version}: ${r.ablation.metric}`,
    ...r.ablation.variants.map((v) => {
      const a = v.testAccuracy;
      return `  ${v.name.padEnd(12)} ${a ? `${pct(a.mean)} ± ${pct(a.std)} % (n = ${a.n})` : 'not run'}  ${v.label}`;
    }),
  ].join('\n');
}

function summary(r: RecipeResults): string {
  const lines = Object.entries(r.stages).map(
    ([k, s]) => `  ${k.padEnd(11)} ${s.cpuSeconds.toFixed(0).padStart(7)} s CPU  ${s.runs} run(s)`,
  );
  const sel = r.selection;
  return [
    `recipe ${r.recipe} v${r.version}: test accuracy ${(100 * (r.testAccuracy ?? NaN)).toFixed(2)}%`,
    sel
      ? `  chosen candidate ${sel.chosen} (validation accuracy ${sel.validationAccuracy.map((a) => a.toFixed(4)).join(', ')})`
      : '',
    ...lines,
  ].join('\n');
}

export async function recipeCommand(argv: string[]): Promise<number> {
  const [sub, name, ...rest] = argv;
  if (sub === 'list') {
    for (const r of [...Object.values(RECIPES), ...Object.values(ABLATIONS)])
      process.stdout.write(`${r.name} v${r.version}  ${r.description}\n`);
    return 0;
  }
  if ((sub === 'export-flow' || sub === 'export-model') && name && !name.startsWith('-')) {
    const v = parse(rest, OPTIONS, `recipe ${sub}`);
    let recipe;
    try {
      recipe = recipeNamed(name, flag(v, 'smoke'));
    } catch (e) {
      throw new UsageError(`prg recipe ${sub}: ${(e as Error).message}`);
    }
    const runDir = str(v, 'dir') ?? join('runs', 'recipes', recipe.name);
    const o = { out: str(v, 'out'), overwrite: flag(v, 'force') };
    if (sub === 'export-flow') {
      process.stdout.write(`${await exportRecipeFlow(recipe, runDir, o)}\n`);
      return 0;
    }
    const res = await exportRecipeModel(recipe, runDir, { ...o, version: str(v, 'model-version') });
    process.stdout.write(`${res.dir}: ${res.name}@${res.version} (candidate ${res.chosen})\n`);
    return 0;
  }
  if (sub !== 'run' || !name || name.startsWith('-')) {
    if (sub === '--help' || sub === '-h' || name === '--help') {
      process.stdout.write(RECIPE_HELP + '\n');
      return 0;
    }
    throw new UsageError(
      'usage: prg recipe run NAME [--resume] [--smoke] | prg recipe list | prg recipe export-flow NAME | prg recipe export-model NAME',
    );
  }
  const v = parse(rest, OPTIONS, 'recipe run');
  if (flag(v, 'help')) {
    process.stdout.write(RECIPE_HELP + '\n');
    return 0;
  }
  const resume = flag(v, 'resume');
  const onStage =
    ({ newPhase, logStage }: Pick<TrainingHooks, 'newPhase' | 'logStage'>) =>
    (e: StageEvent) => {
      logStage(e);
      if (e.status === 'done') return;
      newPhase();
      if (flag(v, 'quiet')) return;
      process.stderr.write(
        `\n[${e.index + 1}/${e.total}] ${e.stage}${e.status === 'skip' ? ': done before, skipped' : ''}\n`,
      );
    };
  const ablation = ablationNamed(name, flag(v, 'smoke'));
  if (ablation) {
    const dir = str(v, 'dir') ?? join('runs', 'recipes', ablation.name);
    return runTrainingCommand(
      'recipe',
      withLog(v, dir),
      { recipe: ablation.name, version: ablation.version, dir, resume },
      async ({ newPhase, logStage, ...hooks }) =>
        runAblation({
          recipe: ablation,
          dir,
          unitsDir: str(v, 'units'),
          resume,
          ...session(v),
          ...hooks,
          onStage: onStage({ newPhase, logStage }),
        }),
      ablationSummary,
    );
  }
  let recipe;
  try {
    recipe = recipeNamed(name, flag(v, 'smoke'));
  } catch (e) {
    throw new UsageError(`prg recipe run: ${(e as Error).message}`);
  }
  const dir = str(v, 'dir') ?? join('runs', 'recipes', recipe.name);
  return runTrainingCommand(
    'recipe',
    withLog(v, dir),
    { recipe: recipe.name, version: recipe.version, dir, resume },
    async ({ newPhase, logStage, ...hooks }) =>
      runRecipe({
        recipe,
        dir,
        resume,
        ...session(v),
        ...hooks,
        onStage: onStage({ newPhase, logStage }),
      }),
    summary,
  );
}
