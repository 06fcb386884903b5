/**
 * `prg recipe run NAME [--resume] [--smoke]` and `prg recipe list` (src/prg/recipes): a named,
 * versioned recipe end to end, resumable after Ctrl-C, with a progress bar and ETA per stage.
 */
import { join } from 'node:path';
import { RECIPES, recipeNamed } from '../prg/recipes/definitions';
import { RecipeResults, runRecipe } from '../prg/recipes/run';
import { OptionSpec, UsageError, flag, parse, str } from './args';
import { COMMON, session } from './common';
import { runTrainingCommand } from './training-run';

const OPTIONS: OptionSpec = {
  ...COMMON,
  resume: { type: 'boolean' },
  smoke: { type: 'boolean' },
  dir: { type: 'string' },
  log: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
};

export const RECIPE_HELP = `prg recipe run NAME [--resume] [--smoke] [--dir DIR] [options]
prg recipe list
  Runs recipe NAME end to end: pretrain → fine-tune each candidate → choose on a validation split
  carved from the training set → test accuracy → OOD fit. Writes DIR (default runs/recipes/NAME,
  runs/recipes/NAME-smoke with --smoke): state.json, results.json, flow/, candidates/<i>/.
  Ctrl-C checkpoints the current stage (exit 130); --resume skips finished stages and continues.
  --smoke   a tiny version of the recipe that runs in seconds (checks the pipeline, not results)
  --log FILE.jsonl --quiet --json --threads N --device cpu|cuda`;

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
    for (const r of Object.values(RECIPES))
      process.stdout.write(`${r.name} v${r.version}  ${r.description}\n`);
    return 0;
  }
  if (sub !== 'run' || !name || name.startsWith('-')) {
    if (sub === '--help' || sub === '-h' || name === '--help') {
      process.stdout.write(RECIPE_HELP + '\n');
      return 0;
    }
    throw new UsageError(`usage: prg recipe run NAME [--resume] [--smoke] | prg recipe list`);
  }
  const v = parse(rest, OPTIONS, 'recipe run');
  if (flag(v, 'help')) {
    process.stdout.write(RECIPE_HELP + '\n');
    return 0;
  }
  let recipe;
  try {
    recipe = recipeNamed(name, flag(v, 'smoke'));
  } catch (e) {
    throw new UsageError(`prg recipe run: ${(e as Error).message}`);
  }
  const dir = str(v, 'dir') ?? join('runs', 'recipes', recipe.name);
  const resume = flag(v, 'resume');
  return runTrainingCommand(
    'recipe',
    v,
    { recipe: recipe.name, version: recipe.version, dir, resume },
    async ({ newPhase, ...hooks }) =>
      runRecipe({
        recipe,
        dir,
        resume,
        ...session(v),
        ...hooks,
        onStage: (e) => {
          if (e.status === 'done') return;
          newPhase();
          if (flag(v, 'quiet')) return;
          process.stderr.write(
            `\n[${e.index + 1}/${e.total}] ${e.stage}${e.status === 'skip' ? ': done before, skipped' : ''}\n`,
          );
        },
      }),
    summary,
  );
}
