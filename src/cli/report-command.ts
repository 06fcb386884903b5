/**
 * `prg report [PATH...] [--out docs/RESULTS.md] [--figures docs/results]` (`npm run report`):
 * the results report from recipe, ablation and analysis results files (src/report).
 */
import * as os from 'node:os';
import { commandLine, gitCommit } from '../prg/model-dir/provenance';
import { buildReport } from '../report/build';
import { findInputs } from '../report/inputs';
import { parseArgs } from 'node:util';
import { OptionSpec, UsageError, flag, str } from './args';

export const REPORT_HELP = `prg report [PATH...] [--out docs/RESULTS.md] [--figures docs/results]
  Reads results.json (recipes, ablations), analysis.json (prg analyze) and tta.json (bench/tta.ts
  with TTA_OUT) under each PATH (default: runs/recipes, runs/analysis and runs/tta; a directory's
  subdirectories are searched one level down) and
  writes the markdown report with PNG figures. Sections without results say "not run yet".`;

const OPTIONS: OptionSpec = {
  out: { type: 'string' },
  figures: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export async function reportCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: argv,
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    });
    values = parsed.values as Record<string, string | boolean | undefined>;
    positionals = parsed.positionals;
  } catch (e) {
    throw new UsageError(`prg report: ${(e as Error).message}`);
  }
  if (flag(values, 'help')) {
    process.stdout.write(REPORT_HELP + '\n');
    return 0;
  }
  const paths = positionals.length ? positionals : ['runs/recipes', 'runs/analysis', 'runs/tta'];
  const out = str(values, 'out') ?? 'docs/RESULTS.md';
  const figuresDir = str(values, 'figures') ?? 'docs/results';
  const inputs = await findInputs(paths);
  const r = await buildReport({
    inputs,
    out,
    figuresDir,
    commit: gitCommit(),
    command: commandLine(),
    // No load average or clock time: the report is a function of its inputs (each results file
    // states the machine its numbers were measured on).
    machine: `${os.cpus().length} cores ${os.cpus()[0]?.model ?? ''}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  });
  process.stdout.write(
    `${out}: ${inputs.length} results file(s), ${r.figures.length} figure(s) in ${figuresDir}` +
      (r.removed.length
        ? `; removed ${r.removed.length} no longer linked: ${r.removed.join(', ')}`
        : '') +
      '\n',
  );
  return 0;
}
