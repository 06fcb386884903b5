/**
 * The report's time-to-accuracy section: bench/tta.ts's output file (TTA_OUT, kind
 * `prg.tta/v1`), the same fine-tuning run by this engine and by a PyTorch eager reimplementation on
 * the same machine, from the same flow, on the same batches (issue 16, item 4). Every number is
 * read from the file's lines: one per side (curve [step, wall s, CPU s, accuracy]), one per
 * accuracy threshold, and a summary.
 */
import { VlSpec, provenanceTitle } from './charts';
import { NOT_RUN, fmt, pct, short, table } from './format';
import { ReportInput, isObj, numOr, strOr } from './inputs';

const SIDE_LABEL: Record<string, string> = { prg: 'this engine (ONNX Runtime)', torch: 'PyTorch' };

export interface TtaFigure {
  name: string;
  spec: VlSpec;
  caption: string;
}

export interface TtaPart {
  lines: string[];
  figure: TtaFigure | null;
}

const num = (v: unknown, digits: number) => fmt(numOr(v), digits);

/** Markdown lines and the accuracy-vs-CPU-time figure of one bench/tta.ts output file. */
export function ttaPart(inp: ReportInput, machine: string): TtaPart {
  const lines = Array.isArray(inp.json.lines) ? inp.json.lines.filter(isObj) : [];
  const sides = lines.filter((l) => typeof l.side === 'string' && Array.isArray(l.curve));
  const errors = lines.filter((l) => typeof l.side === 'string' && typeof l.error === 'string');
  const thresholds = lines.filter((l) => numOr(l.threshold) !== null);
  const summary = lines.find((l) => l.summary === true) ?? {};
  const recipe = isObj(summary.recipe) ? summary.recipe : {};
  const commit = strOr(inp.json.commit);
  const out: string[] = [
    `${inp.file}: \`${strOr(inp.json.command)}\`, commit ${short(commit)}, ${machine}, ${strOr(inp.json.createdAt)}. ` +
      `Recipe: batch ${String(recipe.batch ?? '?')}, ${strOr(recipe.solver, '?')} K = ${String(recipe.k ?? '?')} to t* = ${String(recipe.tStar ?? '?')}, ` +
      `constant lr ${String(recipe.lr ?? '?')}, λ = ${String(recipe.lambdaFlow ?? '?')}, ${String(recipe.threads ?? '?')} thread(s) per side; ` +
      `validation accuracy on ${String(recipe.evalImages ?? '?')} images carved from the training split, every ${String(recipe.evalEvery ?? '?')} steps. ` +
      `PyTorch ${strOr(summary.torch_version, '—')}; forward agreement at the start (max |Δ|): ${JSON.stringify(summary.forward_max_abs_diff ?? null)}.`,
  ];
  for (const e of errors)
    out.push('', `${SIDE_LABEL[strOr(e.side)] ?? strOr(e.side)}: ${strOr(e.error)}.`);
  if (thresholds.length)
    out.push(
      '',
      table(
        [
          'validation accuracy',
          'this engine: step',
          'CPU s',
          'wall s',
          'PyTorch: step',
          'CPU s',
          'wall s',
          'CPU ratio (engine / PyTorch)',
          'wall ratio',
        ],
        thresholds.map((t) => [
          `${pct(numOr(t.threshold), 0)} %`,
          String(t.prg_step ?? '—'),
          num(t.prg_cpu_s, 1),
          num(t.prg_wall_s, 1),
          String(t.torch_step ?? '—'),
          num(t.torch_cpu_s, 1),
          num(t.torch_wall_s, 1),
          num(t.cpu_ratio_prg_over_torch, 2),
          num(t.wall_ratio_prg_over_torch, 2),
        ]),
      ),
    );
  if (sides.length)
    out.push(
      '',
      table(
        [
          'side',
          'steps',
          'median step CPU ms',
          'median step wall ms',
          'final accuracy (%)',
          'load before → after',
        ],
        sides.map((s) => [
          SIDE_LABEL[strOr(s.side)] ?? strOr(s.side),
          String(s.steps ?? '—'),
          num(s.step_cpu_ms_median, 1),
          num(s.step_wall_ms_median, 1),
          pct(numOr(s.final_accuracy), 1),
          `${JSON.stringify(s.load_before ?? null)} → ${JSON.stringify(s.load_after ?? null)}`,
        ]),
      ),
      '',
      `Median step time, engine / PyTorch: CPU ${num(summary.step_cpu_ratio_prg_over_torch, 2)}, wall ${num(summary.step_wall_ratio_prg_over_torch, 2)} (below 1: this engine is faster).`,
    );
  if (!sides.length) return { lines: out, figure: null };
  const values = sides.flatMap((s) =>
    (s.curve as unknown[]).filter(Array.isArray).map((c) => ({
      side: SIDE_LABEL[strOr(s.side)] ?? strOr(s.side),
      cpu: numOr(c[2]),
      accuracy: numOr(c[3]),
    })),
  );
  const spec: VlSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: provenanceTitle(
      'Validation accuracy vs training CPU time',
      `bench/tta.ts, ${inp.file}`,
      commit,
    ),
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'cpu',
        type: 'quantitative',
        title: 'training CPU seconds (process, every thread)',
      },
      y: {
        field: 'accuracy',
        type: 'quantitative',
        title: 'validation accuracy',
        scale: { zero: false },
      },
      color: { field: 'side', type: 'nominal', legend: { labelLimit: 300 } },
    },
    width: 420,
    height: 240,
  };
  return {
    lines: out,
    figure: {
      name: 'tta',
      spec,
      caption: `Validation accuracy against training CPU seconds, this engine and PyTorch on the same batches (bench/tta.ts), ${inp.file}, commit ${short(commit)}.`,
    },
  };
}

/** What to run when no time-to-accuracy file was found. */
export const TTA_NOT_RUN = `${NOT_RUN} (\`PRG_PYTHON=… TTA_OUT=runs/tta/full/tta.json node dist/bench/tta.js\` after \`npm run build\`).`;
