/**
 * docs/RESULTS.md from the results files (inputs.ts): tables beside the paper's numbers
 * (paper.ts) and PNG figures (charts.ts), each figure titled with the recipe (or model) and the
 * commit recorded in the file that holds its numbers. A section whose results are missing says
 * "not run yet"; no number here is typed by hand — each is read from a results file.
 */
import { promises as fs } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { writeFileAtomic } from '../engine/runtime/checkpoint';
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
import { VlSpec, chartPng, provenanceTitle } from './charts';
import { claimRows } from './claims';
import { NOT_RUN, fmt, pct, short, slug, table } from './format';
import { CurvePoint, Json, ReportInput, isObj, numOr, readCurves, strOr } from './inputs';
import { TTA_NOT_RUN, ttaPart } from './tta';
import {
  OUR_SETTING,
  PAPER_CLAIMS,
  PAPER_FROZEN_GAP,
  PAPER_MAIN,
  PAPER_SETTING,
  PAPER_STEPS,
  RECIPE_TARGETS,
} from './paper';

export { NOT_RUN };

export interface BuildReportOptions {
  inputs: ReportInput[];
  /** The markdown file (docs/RESULTS.md). */
  out: string;
  /** Where the PNGs go (docs/results). */
  figuresDir: string;
  /** The commit and command that generate the report (stated at the top). */
  commit: string;
  command: string;
  machine: string;
  /** The time stated when no input records one (tests fix it). */
  now?: Date;
}

export interface BuiltReport {
  markdown: string;
  figures: string[];
}

class Report {
  readonly parts: string[] = [];
  readonly figures: string[] = [];
  constructor(private readonly o: BuildReportOptions) {}

  add(...lines: string[]): void {
    this.parts.push(...lines, '');
  }

  /** Render `spec` to figuresDir/name.png and link it. */
  async figure(name: string, spec: VlSpec, caption: string): Promise<void> {
    const file = this.unique(name);
    await writeFileAtomic(file, await chartPng(spec));
    this.figures.push(file);
    this.add(`![${caption}](${this.link(file)})`, `*${caption}*`);
  }

  /** Copy a PNG made by another command (sample grids) and link it. */
  async copyImage(src: string, name: string, caption: string): Promise<void> {
    const file = this.unique(name);
    const bytes = await fs.readFile(src).catch(() => null);
    if (!bytes) {
      this.add(`${caption}: image ${src} is missing (${NOT_RUN}).`);
      return;
    }
    await writeFileAtomic(file, bytes);
    this.figures.push(file);
    this.add(`![${caption}](${this.link(file)})`, `*${caption}*`);
  }

  /** figuresDir/name.png, or name-2.png, … when two inputs share a name (the same recipe twice). */
  private unique(name: string): string {
    for (let i = 1; ; i++) {
      const file = join(this.o.figuresDir, `${name}${i > 1 ? `-${i}` : ''}.png`);
      if (!this.figures.includes(file)) return file;
    }
  }

  link(file: string): string {
    return relative(join(this.o.out, '..'), file).split('\\').join('/');
  }
}

function cpuHours(stages: unknown): number | null {
  if (!isObj(stages)) return null;
  let s = 0;
  for (const v of Object.values(stages)) if (isObj(v)) s += numOr(v.cpuSeconds, 0)!;
  return s / 3600;
}

function machineOf(j: Json): string {
  const m = j.machine;
  if (!isObj(m)) return '—';
  return `${numOr(m.cpus) ?? '?'} cores ${strOr(m.cpu)}, ${numOr(m.memoryGiB) ?? '?'} GiB`;
}

// ---- sections ------------------------------------------------------------------------------------

async function recipesSection(r: Report, recipes: ReportInput[]): Promise<void> {
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

async function curvesSection(r: Report, runs: ReportInput[]): Promise<void> {
  r.add('## Training curves');
  r.add(
    'Loss per optimizer step from the training log beside each results file: flow-matching pretraining and fine-tuning in separate panels, one line per stage (ablations: per variant, seed and learning-rate candidate; logs written before stages were tagged: per restart of the step count).',
  );
  let any = false;
  for (const inp of runs) {
    if (!inp.logs.length) continue;
    const pts: CurvePoint[] = await readCurves(inp.logs);
    if (!pts.length) continue;
    any = true;
    const name = strOr(inp.json.recipe, basename(inp.dir));
    const series = [...new Set(pts.map((p) => p.series))];
    await r.figure(
      `curves-${slug(name)}`,
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: provenanceTitle(`Training loss: ${name}`, `recipe ${name}`, strOr(inp.json.commit)),
        data: { values: pts },
        facet: {
          row: {
            field: 'phase',
            type: 'nominal',
            sort: ['pretrain', 'finetune'],
            header: {
              labelExpr:
                "datum.value === 'pretrain' ? 'pretraining (flow matching)' : 'fine-tuning'",
              title: null,
            },
          },
        },
        spec: {
          mark: { type: 'line', strokeWidth: 1, clip: true },
          encoding: {
            x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
            y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
            color: {
              field: 'series',
              type: 'nominal',
              title: 'stage',
              sort: series,
              scale: { scheme: series.length > 10 ? 'tableau20' : 'tableau10' },
              legend: { labelLimit: 400, symbolLimit: 0 },
            },
          },
          width: 480,
          height: 200,
        },
        resolve: { scale: { x: 'independent', y: 'independent', color: 'independent' } },
      },
      `Training loss per step of recipe ${name}, commit ${short(inp.json.commit)}, ${series.length} stage(s) (from ${inp.logs.map((l) => basename(l)).join(', ')}).`,
    );
  }
  if (!any)
    r.add(
      `${NOT_RUN}: no training log beside any results file (run recipes with \`--log DIR/log.jsonl\`).`,
    );
}

async function claimsSection(r: Report, abl: ReportInput[]): Promise<void> {
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

async function ablationsSection(r: Report, abl: ReportInput[]): Promise<void> {
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

async function generationSection(r: Report, analyses: ReportInput[]): Promise<void> {
  r.add('## Generation: does the reverse process reach noise, and how good are the samples?');
  r.add(`Paper (${PAPER_CLAIMS.generation.where}): ${PAPER_CLAIMS.generation.claim}`);
  if (!analyses.length) {
    r.add(
      `${NOT_RUN} (\`npx prg analyze --model DIR --data mnist:test --out runs/analysis/NAME ...\`).`,
    );
    return;
  }
  for (const inp of analyses) {
    const j = inp.json;
    const model = strOr(j.model);
    const commit = strOr(j.commit);
    const m = isObj(j.machine) ? j.machine : {};
    r.add(
      `### ${model} (${strOr(j.interpolant)})`,
      `Made by \`${strOr(j.command)}\` at commit ${short(commit)} on ${numOr(m.cpus) ?? '?'} cores ${strOr(m.cpu)}, ${numOr(m.memoryGiB) ?? '?'} GiB, load average ${Array.isArray(m.loadAverage) ? m.loadAverage.join(' ') : '?'} (shared machine).`,
    );
    const ns = isObj(j.noiseStats) ? j.noiseStats : null;
    if (ns) {
      const ref = isObj(ns.reference) ? ns.reference : {};
      const g = (o: Json, k: string, f: 'mean' | 'maxAbs') =>
        isObj(o[k]) ? numOr((o[k] as Json)[f]) : null;
      r.add(
        `x_1 = reverse ODE (${strOr(ns.solver)}, K = ${String(ns.steps)}) of ${String(ns.n)} images of ${strOr(j.data)}, against a seeded N(0, I) sample of the same size:`,
        '',
        table(
          ['statistic', 'x_1', 'N(0, I) sample', 'ideal'],
          [
            ['mean', fmt(numOr(ns.mean)), fmt(numOr(ref.mean)), '0'],
            ['std', fmt(numOr(ns.std)), fmt(numOr(ref.std)), '1'],
            ...(
              [
                ['per-pixel mean, max |·|', 'pixelMean', 'maxAbs', '0'],
                ['per-pixel std, mean', 'pixelStd', 'mean', '1'],
                ['per-pixel skew, mean', 'pixelSkew', 'mean', '0'],
                ['per-pixel skew, max |·|', 'pixelSkew', 'maxAbs', '0'],
                ['per-pixel excess kurtosis, mean', 'pixelExcessKurtosis', 'mean', '0'],
                ['per-pixel excess kurtosis, max |·|', 'pixelExcessKurtosis', 'maxAbs', '0'],
              ] as const
            ).map(([label, k, f, ideal]) => [label, fmt(g(ns, k, f)), fmt(g(ref, k, f)), ideal]),
            ['KS statistic (pooled values)', fmt(numOr(ns.ks)), fmt(numOr(ref.ks)), '0'],
            // Not 0: the exact flow of a diagonal Gaussian fit, which does end at N(0, I), keeps
            // this much of the image (noise-stats.ts); older analyses lack it.
            [
              'corr(x_0, x_1), mean over images',
              fmt(numOr(ns.correlationWithImage)),
              '—',
              typeof ns.gaussianFlowCorrelation === 'number'
                ? `${fmt(ns.gaussianFlowCorrelation)} (exact flow of a diagonal Gaussian fit)`
                : '—',
            ],
          ],
        ),
      );
      // The solver's share of the gap (noise-stats.ts gaussianFlowSolved); older analyses lack it.
      const gf = isObj(ns.gaussianFlow) ? ns.gaussianFlow : null;
      if (gf && isObj(gf.solved) && isObj(gf.exact))
        r.add(
          '',
          `Without a net: the exact flow of a diagonal Gaussian fit of the same images, integrated by the same solver, ends at std ${fmt(numOr(gf.solved.std))}, KS ${fmt(numOr(gf.solved.ks))}; in closed form at std ${fmt(numOr(gf.exact.std))}, KS ${fmt(numOr(gf.exact.ks))}. The distance between the two is the solver's, whatever the net has learnt.`,
        );
    } else r.add(`Noise statistics: ${NOT_RUN}.`);

    const tr = isObj(j.trajectories) ? j.trajectories : null;
    if (tr)
      await r.copyImage(
        join(inp.dir, strOr(tr.file)),
        `trajectories-${slug(model)}`,
        `Reverse trajectories of ${String(tr.images)} test images, t = 0 (left) → 1 (right), ${strOr(tr.solver)} K = ${String(tr.steps)}; model ${model}, commit ${short(commit)}.`,
      );

    const sq = isObj(j.sampleQuality) ? j.sampleQuality : null;
    const rows = sq && Array.isArray(sq.rows) ? sq.rows.filter(isObj) : [];
    if (sq && rows.length) {
      r.add(
        `Sample quality: FID in ${strOr(sq.featureModel)} — not Inception FID, comparable only with itself — between ${String(sq.n)} samples (seed ${String(sq.seed)}) and ${String(sq.n)} test images. Floor at this n (test vs other test images): ${fmt(numOr(sq.realVsReal), 2)}.`,
        '',
        table(
          ['solver', 'K', 'FID (classifier features)', `generation s (${String(sq.n)} images)`],
          rows.map((x) => [
            strOr(x.solver),
            String(x.steps),
            fmt(numOr(x.fid), 2),
            fmt(numOr(x.seconds), 1),
          ]),
        ),
      );
      await r.figure(
        `fid-vs-K-${slug(model)}`,
        {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title: provenanceTitle(
            `FID in classifier features vs K: ${model}`,
            `model ${model}`,
            commit,
          ),
          data: {
            values: rows.map((x) => ({
              solver: strOr(x.solver),
              K: numOr(x.steps),
              fid: numOr(x.fid),
            })),
          },
          layer: [
            {
              mark: { type: 'line', point: true },
              encoding: {
                x: {
                  field: 'K',
                  type: 'quantitative',
                  scale: { type: 'log' },
                  title: 'steps K (log)',
                },
                y: { field: 'fid', type: 'quantitative', title: 'FID (classifier features)' },
                color: { field: 'solver', type: 'nominal' },
              },
            },
            {
              data: { values: [{ floor: numOr(sq.realVsReal) }] },
              mark: { type: 'rule', strokeDash: [4, 4], color: '#888' },
              encoding: { y: { field: 'floor', type: 'quantitative' } },
            },
          ],
          width: 420,
          height: 240,
        },
        `FID in ${strOr(sq.featureModel)} against K (dashed: test vs test floor); model ${model}.`,
      );
    } else r.add(`Sample quality: ${NOT_RUN}.`);

    const samples = Array.isArray(j.samples) ? j.samples.filter(isObj) : [];
    for (const s of samples)
      await r.copyImage(
        join(inp.dir, strOr(s.file)),
        `samples-${slug(model)}-${strOr(s.solver)}-${String(s.steps)}`,
        `${String(s.n)} samples of ${model}, ${strOr(s.solver)} K = ${String(s.steps)}, seed ${String(s.seed)}; commit ${short(commit)}.`,
      );
    if (!samples.length) r.add(`Sample grids: ${NOT_RUN}.`);

    const ood = isObj(j.ood) ? j.ood : null;
    if (ood && Array.isArray(ood.in) && Array.isArray(ood.out)) {
      const inS = ood.in.map((x) => numOr(x)).filter((x): x is number => x !== null);
      const outS = ood.out.map((x) => numOr(x)).filter((x): x is number => x !== null);
      // A long out-of-distribution tail would squeeze every in-distribution score into one bin:
      // the axis spans the in-distribution range widened by 3× its width each side, and scores
      // beyond it are counted in the edge bins (the caption says how many).
      const sorted = [...inS].sort((a, b) => a - b);
      const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
      const width = Math.max(1e-9, q(0.995) - q(0.005));
      const lo = q(0.005) - 3 * width;
      const hi = q(0.995) + 3 * width;
      const clamp = (x: number) => Math.min(hi, Math.max(lo, x));
      const beyond = [...inS, ...outS].filter((x) => x < lo || x > hi).length;
      const vals = [
        ...inS.map((s) => ({ set: `in: ${strOr(ood.inData)}`, score: clamp(s) })),
        ...outS.map((s) => ({ set: `out: ${strOr(ood.outData)}`, score: clamp(s) })),
      ];
      await r.figure(
        `ood-hist-${slug(model)}`,
        {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title: provenanceTitle(
            `OOD score ${strOr(ood.score)}: in vs out`,
            `model ${model}`,
            commit,
          ),
          data: { values: vals },
          mark: { type: 'bar', opacity: 0.6 },
          encoding: {
            x: {
              field: 'score',
              type: 'quantitative',
              bin: { maxbins: 40 },
              title: `${strOr(ood.score)} (higher = in-distribution)`,
            },
            y: { aggregate: 'count', type: 'quantitative', stack: null, title: 'images' },
            color: { field: 'set', type: 'nominal', legend: { labelLimit: 400 } },
          },
          width: 420,
          height: 220,
        },
        `Histogram of the primary OOD score (${strOr(ood.score)}) on ${inS.length} images of ${strOr(ood.inData)} and ${outS.length} of ${strOr(ood.outData)}; ${beyond} score(s) outside [${lo.toPrecision(4)}, ${hi.toPrecision(4)}] are counted in the edge bins; model ${model}.`,
      );
    } else r.add(`OOD histograms: ${NOT_RUN}.`);
  }
}

async function ttaSection(r: Report, inputs: ReportInput[]): Promise<void> {
  r.add(
    '## Time to accuracy against PyTorch',
    'The same fine-tuning (paper §3.2, eq. 3) by this engine and by a PyTorch eager reimplementation (bench/torch_tta.py) on the same machine, from the same pretrained flow, on the same batches; training time only (evaluations excluded), process CPU seconds being the steadier clock on a shared machine. docs/training.md describes the benchmark.',
  );
  if (!inputs.length) r.add(`Time to accuracy: ${TTA_NOT_RUN}`);
  for (const inp of inputs) {
    const part = ttaPart(inp, machineOf(inp.json));
    r.add(...part.lines);
    if (part.figure) await r.figure(part.figure.name, part.figure.spec, part.figure.caption);
  }
}

/**
 * The newest time recorded in the inputs (results' updatedAt, analyses' createdAt), so that the
 * same inputs give the same report whenever it is generated; `now` only when none records one.
 */
function latestInput(inputs: readonly ReportInput[], now?: Date): string {
  const times = inputs
    .map((i) => strOr(i.json.updatedAt) || strOr(i.json.createdAt))
    .filter((t) => !Number.isNaN(Date.parse(t)))
    .sort();
  return times.length ? times[times.length - 1] : (now ?? new Date()).toISOString();
}

export async function buildReport(o: BuildReportOptions): Promise<BuiltReport> {
  const r = new Report(o);
  await fs.mkdir(o.figuresDir, { recursive: true });
  const by = (k: ReportInput['kind']) => o.inputs.filter((i) => i.kind === k);
  r.add(
    '# Results',
    `Generated by \`${o.command}\` at commit ${short(o.commit)} (${o.machine}) from results last written ${latestInput(o.inputs, o.now)}. ` +
      'Every number below is read from the results files listed here; regenerate with `npm run report`.',
    '',
    o.inputs.length
      ? table(
          ['file', 'kind', 'made at commit'],
          o.inputs.map((i) => [i.file, i.kind, short(i.json.commit)]),
        )
      : `No results files found: every section is ${NOT_RUN}.`,
  );
  await recipesSection(r, by('recipe'));
  await claimsSection(r, by('ablation'));
  await curvesSection(r, [...by('recipe'), ...by('ablation')]);
  await ablationsSection(r, by('ablation'));
  await ttaSection(r, by('tta'));
  await generationSection(r, by('analysis'));
  const markdown = r.parts.join('\n');
  await writeFileAtomic(o.out, new TextEncoder().encode(markdown));
  return { markdown, figures: r.figures };
}
