/**
 * The claims table and the ablations' section: per question, the paper's words and numbers above
 * our variants' mean ± std over seeds, with accuracy-vs-K and accuracy-vs-t* charts.
 */
import {
  AblationKind,
  KINDS,
  RESOLVED_RULE,
  VariantRow,
  compare,
  deltaText,
  kindOf,
  meanStd,
  tStarOf,
  variantsOf,
} from './ablations';
import { VlSpec, provenanceTitle } from './charts';
import { claimRows } from './claims';
import { NOT_RUN, pct, short, slug, table } from './format';
import { Json, ReportInput, isObj, numOr, strOr } from './inputs';
import { PAPER_CLAIMS, PAPER_FROZEN_GAP, PAPER_STEPS } from './paper';
import { Report, machineOf } from './writer';

export async function claimsSection(r: Report, abl: ReportInput[]): Promise<void> {
  r.add("## Which of the paper's claims hold at this scale");
  r.add(
    `Each claim is tested on the ablation results below; ${RESOLVED_RULE}. "Holds" means the paper's direction is resolved in our numbers, "does not hold" that a difference the paper says is absent (or the opposite of the one it reports) is resolved; with 2 seeds this is a coarse test, and our setting differs from the paper's (see Recipes).`,
  );
  const rows = claimRows(abl);
  if (!rows.length) {
    r.add(`${NOT_RUN}: no ablation results to test a claim on.`);
    return;
  }
  r.add(
    table(
      ['claim', 'paper', 'dataset', 'ours (accuracy points)', 'verdict', 'recipe @ commit'],
      rows.map((x) => [x.claim, x.where, x.dataset, x.ours, x.verdict, x.source]),
    ),
  );
}

const KIND_TITLES: Record<AblationKind, { title: string; recipes: string }> = {
  solver: { title: 'Solver and number of steps K', recipes: 'ablate-solver-<dataset>' },
  tstar: { title: 'Feature time t*', recipes: 'ablate-tstar-<dataset>' },
  flows: { title: 'Flows: ICFM vs OT-CFM vs GVP', recipes: 'ablate-flows-<dataset>' },
  finetune: {
    title: 'Fine-tuning: full vs frozen flow (head only) vs no pretraining',
    recipes: 'ablate-finetune-<dataset>',
  },
  supervised: {
    title: 'Supervised baseline of the same size and budget',
    recipes: 'ablate-supervised-<dataset>',
  },
  lambda: { title: 'Flow-matching term λ', recipes: 'ablate-lambda-<dataset>' },
  other: { title: 'Other ablations', recipes: '' },
};

/** The paper's number or claim beside a variant of an ablation of `kind`. */
function paperCell(kind: AblationKind, v: VariantRow, reference: string): string {
  if (kind === 'flows') {
    const flow = { icfm: 'PRG-ICFM', otcfm: 'PRG-OTCFM', gvp: 'PRG-GVP' }[
      strOr(v.settings.interpolant)
    ];
    const row = PAPER_STEPS.rows.find((x) => x.flow === flow);
    return row
      ? `${row.accuracy[0].toFixed(2)} (CIFAR-10, ${PAPER_STEPS.where}, K = ${PAPER_STEPS.steps[0]})`
      : '—';
  }
  if (kind === 'finetune') {
    if (v.name === reference) return 'end to end (reference)';
    if (v.name === 'frozen')
      return `${PAPER_FROZEN_GAP.map((g) => `${g.dataset} −${g.gap.toFixed(2)}`).join(', ')} points vs end to end (${PAPER_FROZEN_GAP[0].where})`;
    if (v.name === 'scratch') return `suboptimal (${PAPER_CLAIMS.pretraining.where})`;
  }
  if (kind === 'supervised' && v.name === 'supervised')
    return `PRG above WideResNet-28 (${PAPER_CLAIMS.supervised.where}); no same-net baseline`;
  if (kind === 'lambda')
    return `λ ∈ {1, 10, 100} (${PAPER_CLAIMS.lambda.where}); values not legible in our copy`;
  if (kind === 'tstar') return v.name === reference ? PAPER_CLAIMS.tStar.where : '';
  return '';
}

/** Accuracy (mean ± std) points of a chart, in percent. */
const band = (v: VariantRow) => ({
  accuracy: 100 * v.mean!,
  lo: 100 * (v.mean! - (v.std ?? 0)),
  hi: 100 * (v.mean! + (v.std ?? 0)),
});

function lineWithBars(
  x: Record<string, unknown>,
  color?: Record<string, unknown>,
  extra: VlSpec[] = [],
): VlSpec {
  return {
    encoding: { x, ...(color ? { color } : {}) },
    layer: [
      {
        mark: { type: 'line', point: true },
        encoding: {
          y: {
            field: 'accuracy',
            type: 'quantitative',
            scale: { zero: false },
            title: 'test accuracy (%)',
          },
        },
      },
      {
        mark: 'errorbar',
        encoding: {
          y: { field: 'lo', type: 'quantitative', title: 'test accuracy (%)' },
          y2: { field: 'hi' },
        },
      },
      ...extra,
    ],
    width: 420,
    height: 240,
  };
}

/** K × solver table and accuracy-vs-K chart of one ablation's eval variants. */
async function solverPart(r: Report, inp: ReportInput, vs: VariantRow[]): Promise<void> {
  const evals = vs.filter((v) => v.kind === 'eval');
  if (!evals.length) return;
  const recipe = strOr(inp.json.recipe);
  const solvers = [...new Set(evals.map((v) => strOr(v.settings.solver, '?')))];
  const ks = [...new Set(evals.map((v) => numOr(v.settings.steps)))].sort(
    (a, b) => (a ?? Infinity) - (b ?? Infinity),
  );
  const cell = (k: number | null, s: string) => {
    const v = evals.find(
      (x) => strOr(x.settings.solver, '?') === s && numOr(x.settings.steps) === k,
    );
    return v ? meanStd(v) : '·';
  };
  r.add(
    `Test accuracy (%) of the trained model by solver steps K and solver (· = not measured; dopri5 is adaptive):`,
    '',
    table(
      ['K', ...solvers],
      ks.map((k) => [k === null ? 'adaptive' : String(k), ...solvers.map((s) => cell(k, s))]),
    ),
  );
  // Adaptive solvers (no K) as horizontal dashed lines across the K axis.
  const adaptive = evals
    .filter((v) => numOr(v.settings.steps) === null && v.mean !== null)
    .map((v) => ({
      solver: `${strOr(v.settings.solver, '?')} (adaptive)`,
      accuracy: 100 * v.mean!,
    }));
  const pts = evals
    .filter((v) => numOr(v.settings.steps) !== null && v.mean !== null)
    .map((v) => ({
      solver: strOr(v.settings.solver, '?'),
      K: numOr(v.settings.steps)!,
      ...band(v),
    }));
  if (!pts.length) return;
  await r.figure(
    `accuracy-vs-K-${slug(recipe)}`,
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: provenanceTitle(
        'Test accuracy vs solver steps K',
        `recipe ${recipe}`,
        strOr(inp.json.commit),
      ),
      data: { values: pts },
      ...lineWithBars(
        {
          field: 'K',
          type: 'quantitative',
          scale: { type: 'log', nice: false },
          title: 'steps K (log)',
        },
        { field: 'solver', type: 'nominal' },
        adaptive.length
          ? [
              {
                data: { values: adaptive },
                mark: { type: 'rule', strokeDash: [4, 4] },
                encoding: { y: { field: 'accuracy', type: 'quantitative' }, x: null },
              },
            ]
          : [],
      ),
    },
    `Test accuracy (mean ± std over seeds) against K${adaptive.length ? '; dashed: adaptive solvers' : ''}, recipe ${recipe}, commit ${short(inp.json.commit)}.`,
  );
}

/** Accuracy-vs-t* chart of one ablation's train variants (when at least two t* occur). */
async function tStarPart(r: Report, inp: ReportInput, vs: VariantRow[]): Promise<void> {
  const pts = vs
    .map((v) => ({ v, t: tStarOf(v, inp.json) }))
    .filter(({ v, t }) => t !== null && v.mean !== null && v.kind === 'train');
  if (new Set(pts.map((p) => p.t)).size < 2) return;
  const recipe = strOr(inp.json.recipe);
  await r.figure(
    `accuracy-vs-tstar-${slug(recipe)}`,
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: provenanceTitle('Test accuracy vs t*', `recipe ${recipe}`, strOr(inp.json.commit)),
      data: { values: pts.map(({ v, t }) => ({ t, ...band(v) })) },
      ...lineWithBars({ field: 't', type: 'quantitative', title: 't*' }),
    },
    `Test accuracy (mean ± std over seeds) against the fine-tuning end time t*, recipe ${recipe}, commit ${short(inp.json.commit)}.`,
  );
}

/** What the paper says about the question of `kind`, above our tables of it. */
function paperIntro(r: Report, kind: AblationKind): void {
  if (kind === 'solver')
    r.add(
      `Paper (${PAPER_STEPS.where}, CIFAR-10), test accuracy (%) by inference steps:`,
      '',
      table(
        ['flow', ...PAPER_STEPS.steps.map((k) => `K = ${k}`)],
        PAPER_STEPS.rows.map((row) => [row.flow, ...row.accuracy.map((x) => x.toFixed(2))]),
      ),
      '',
      `Paper (${PAPER_CLAIMS.solvers.where}): ${PAPER_CLAIMS.solvers.claim}`,
    );
  const claim = {
    tstar: PAPER_CLAIMS.tStar,
    flows: PAPER_CLAIMS.flows,
    finetune: PAPER_CLAIMS.pretraining,
    supervised: PAPER_CLAIMS.supervised,
    lambda: PAPER_CLAIMS.lambda,
  }[kind as string];
  if (claim) r.add(`Paper (${claim.where}): ${claim.claim}`);
  if (kind === 'finetune')
    r.add(
      `Paper (${PAPER_FROZEN_GAP[0].where}): end-to-end fine-tuning beats the frozen flow by ${PAPER_FROZEN_GAP.map((g) => `${g.gap.toFixed(2)} points on ${g.dataset}`).join(' and ')}.`,
    );
}

export async function ablationsSection(r: Report, abl: ReportInput[]): Promise<void> {
  r.add('## Ablations');
  r.add(
    `Each ablation trains every variant with each seed under one budget (stated per recipe) and reports test accuracy as mean ± sample std over seeds; Δ is against the reference variant, and ${RESOLVED_RULE}.`,
  );
  for (const kind of [...KINDS, 'other'] as AblationKind[]) {
    const mine = abl.filter((i) => kindOf(i) === kind);
    if (kind === 'other' && !mine.length) continue;
    const t = KIND_TITLES[kind];
    r.add(`### ${t.title}`);
    paperIntro(r, kind);
    if (!mine.length) {
      r.add(`Ours: ${NOT_RUN} (\`npx prg recipe run ${t.recipes}\`).`);
      continue;
    }
    for (const inp of mine) {
      const a = inp.json.ablation as Json;
      const name = strOr(inp.json.recipe);
      const budget = isObj(a.budget) ? a.budget : {};
      const ref = strOr(a.reference);
      r.add(
        `#### ${name}${inp.json.complete === true ? '' : ' (partial)'}`,
        `Question: ${strOr(a.question, '—')} Metric: ${strOr(a.metric, 'test accuracy')}. Seeds: ${Array.isArray(a.seeds) ? a.seeds.join(', ') : '—'}. ` +
          `Budget: ${Object.entries(budget)
            .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
            .map(([k, v]) => `${k} ${String(v)}`)
            .join(
              ', ',
            )}. Recipe ${name}, commit ${short(inp.json.commit)}, ${machineOf(inp.json)}.`,
      );
      const vs = variantsOf(inp);
      const refRow = vs.find((v) => v.name === ref);
      const paper = vs.map((v) => paperCell(kind, v, ref));
      const withPaper = paper.some(Boolean);
      r.add(
        table(
          [
            'variant',
            'label',
            ...(kind === 'other' || kind === 'solver' ? ['kind', 'settings'] : []),
            'test accuracy (%) mean ± std',
            'per seed (%)',
            'Δ vs reference (points)',
            ...(withPaper ? ['paper'] : []),
          ],
          vs.map((v, i) => [
            `${v.name}${v.name === ref ? ' (reference)' : ''}`,
            v.label,
            ...(kind === 'other' || kind === 'solver' ? [v.kind, JSON.stringify(v.settings)] : []),
            meanStd(v),
            v.values.map((x) => pct(x)).join(', ') || '—',
            v.name === ref ? '—' : deltaText(compare(v, refRow)),
            ...(withPaper ? [paper[i] || '—'] : []),
          ]),
        ),
      );
      if (kind === 'solver' || kind === 'other') await solverPart(r, inp, vs);
      if (kind === 'tstar' || kind === 'other') await tStarPart(r, inp, vs);
    }
  }
}
