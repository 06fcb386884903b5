/** The recipes' section: test accuracy beside the paper's, model selection and stage times. */
import { NOT_RUN, fmt, pct, short, table } from './format';
import { ReportInput, isObj, numOr, strOr } from './inputs';
import { OUR_SETTING, PAPER_MAIN, PAPER_SETTING, RECIPE_TARGETS } from './paper';
import { Report, machineOf } from './writer';

function cpuHours(stages: unknown): number | null {
  if (!isObj(stages)) return null;
  let s = 0;
  for (const v of Object.values(stages)) if (isObj(v)) s += numOr(v.cpuSeconds, 0)!;
  return s / 3600;
}

export async function recipesSection(r: Report, recipes: ReportInput[]): Promise<void> {
  r.add('## Recipes: test accuracy beside the paper');
  r.add(`Paper's setting: ${PAPER_SETTING}. Ours: ${OUR_SETTING}.`);
  r.add(
    table(
      ['paper: dataset', 'PRG accuracy (%)', 'where'],
      PAPER_MAIN.map((p) => [p.dataset, p.accuracy.toFixed(2), p.where]),
    ),
  );
  if (!recipes.length) {
    r.add(
      `Recipe results: ${NOT_RUN} (\`npx prg recipe run mnist\`, \`npx prg recipe run fashion-mnist\`).`,
    );
    return;
  }
  r.add(
    table(
      [
        'recipe',
        'version',
        'complete',
        'test accuracy (%)',
        'test images',
        'target (issue 16)',
        'target met',
        'chosen candidate (validation acc. %)',
        'CPU h',
        'commit',
        'machine',
      ],
      recipes.map(({ json: j }) => {
        const sel = isObj(j.selection) ? j.selection : null;
        const val = sel && Array.isArray(sel.validationAccuracy) ? sel.validationAccuracy : [];
        const chosen = sel ? numOr(sel.chosen) : null;
        const acc = numOr(j.testAccuracy);
        const stages = isObj(j.stages) ? j.stages : {};
        const ev = isObj(stages.eval) && isObj(stages.eval.result) ? stages.eval.result : {};
        // A smoke run (NAME-smoke) checks the pipeline; the target is the full recipe's.
        const base = strOr(j.recipe).replace(/-smoke$/, '');
        const target = RECIPE_TARGETS[base] ?? null;
        return [
          strOr(j.recipe),
          String(j.version ?? '—'),
          j.complete === true ? 'yes' : 'no (partial)',
          pct(acc),
          String(numOr(ev.n) ?? '—'),
          target === null ? '—' : `≥ ${pct(target)}`,
          target === null || acc === null
            ? '—'
            : `${acc >= target ? 'yes' : 'no'}${base !== strOr(j.recipe) ? ' (smoke run: not meaningful)' : ''}`,
          chosen === null ? '—' : `${chosen} (${val.map((v) => pct(numOr(v))).join(', ')})`,
          fmt(cpuHours(j.stages), 2),
          short(j.commit),
          machineOf(j),
        ];
      }),
    ),
  );
  for (const { json: j } of recipes) {
    const stages = isObj(j.stages) ? j.stages : {};
    const sel = isObj(j.selection) ? j.selection : null;
    if (sel) r.add(`Model selection of ${strOr(j.recipe)}: ${strOr(sel.rule, '—')}.`);
    r.add(
      `Stages of ${strOr(j.recipe)} (command \`${strOr(j.command)}\`):`,
      '',
      table(
        ['stage', 'done', 'CPU s', 'wall s', 'runs'],
        Object.entries(stages).map(([k, v]) =>
          isObj(v)
            ? [
                k,
                v.done === true ? 'yes' : 'no',
                fmt(numOr(v.cpuSeconds), 0),
                fmt(numOr(v.wallSeconds), 0),
                String(v.runs ?? '—'),
              ]
            : [k, '—', '—', '—', '—'],
        ),
      ),
    );
  }
}
