/**
 * docs/RESULTS.md from the results files (inputs.ts): tables beside the paper's numbers
 * (paper.ts) and PNG figures (charts.ts), each figure titled with the recipe (or model) and the
 * commit recorded in the file that holds its numbers. A section whose results are missing says
 * "not run yet"; no number here is typed by hand — each is read from a results file.
 */
import { promises as fs } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { writeFileAtomic } from '../engine/runtime/checkpoint';
import { VlSpec, chartPng, provenanceTitle } from './charts';
import { CurvePoint, Json, ReportInput, isObj, numOr, readCurves, strOr } from './inputs';
import {
  OUR_SETTING,
  PAPER_CLAIMS,
  PAPER_FROZEN_GAP,
  PAPER_MAIN,
  PAPER_SETTING,
  PAPER_STEPS,
} from './paper';

export const NOT_RUN = 'not run yet';

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
  /** Fixed time for reproducible output in tests. */
  now?: Date;
}

export interface BuiltReport {
  markdown: string;
  figures: string[];
}

const pct = (x: number | null, digits = 2) => (x === null ? '—' : (100 * x).toFixed(digits));
const fmt = (x: number | null, digits = 4) => (x === null ? '—' : x.toFixed(digits));
const short = (c: unknown) => strOr(c, 'unknown').slice(0, 10);

function table(head: string[], rows: (string | number)[][]): string {
  const line = (r: (string | number)[]) =>
    `| ${r.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
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
    const file = join(this.o.figuresDir, `${name}.png`);
    await writeFileAtomic(file, await chartPng(spec));
    this.figures.push(file);
    this.add(`![${caption}](${this.link(file)})`, `*${caption}*`);
  }

  /** Copy a PNG made by another command (sample grids) and link it. */
  async copyImage(src: string, name: string, caption: string): Promise<void> {
    const file = join(this.o.figuresDir, `${name}.png`);
    const bytes = await fs.readFile(src).catch(() => null);
    if (!bytes) {
      this.add(`${caption}: image ${src} is missing (${NOT_RUN}).`);
      return;
    }
    await writeFileAtomic(file, bytes);
    this.figures.push(file);
    this.add(`![${caption}](${this.link(file)})`, `*${caption}*`);
  }

  link(file: string): string {
    return relative(join(this.o.out, '..'), file).split('\\').join('/');
  }
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-|-$/g, '');

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
        'chosen candidate (validation acc.)',
        'CPU h',
        'commit',
        'machine',
      ],
      recipes.map(({ json: j }) => {
        const sel = isObj(j.selection) ? j.selection : null;
        const val = sel && Array.isArray(sel.validationAccuracy) ? sel.validationAccuracy : [];
        const chosen = sel ? numOr(sel.chosen) : null;
        return [
          strOr(j.recipe),
          String(j.version ?? '—'),
          j.complete === true ? 'yes' : 'no (partial)',
          pct(numOr(j.testAccuracy)),
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
  let any = false;
  for (const inp of runs) {
    if (!inp.logs.length) continue;
    const pts: CurvePoint[] = await readCurves(inp.logs);
    if (!pts.length) continue;
    any = true;
    const name = strOr(inp.json.recipe, basename(inp.dir));
    await r.figure(
      `curves-${slug(name)}`,
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: provenanceTitle(`Training loss: ${name}`, `recipe ${name}`, strOr(inp.json.commit)),
        data: { values: pts },
        mark: { type: 'line', strokeWidth: 1 },
        encoding: {
          x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
          y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
          color: { field: 'segment', type: 'nominal', title: 'phase' },
        },
        width: 480,
        height: 240,
      },
      `Training loss per step of recipe ${name} (from ${inp.logs.map((l) => basename(l)).join(', ')}).`,
    );
  }
  if (!any)
    r.add(
      `${NOT_RUN}: no training log beside any results file (run recipes with \`--log DIR/log.jsonl\`).`,
    );
}

interface VariantRow {
  recipe: string;
  commit: string;
  name: string;
  label: string;
  kind: string;
  settings: Json;
  mean: number | null;
  std: number | null;
  n: number;
  values: number[];
}

function variantsOf(inp: ReportInput): VariantRow[] {
  const a = inp.json.ablation as Json;
  const vs = Array.isArray(a.variants) ? a.variants : [];
  return vs.filter(isObj).map((v) => {
    const acc = isObj(v.testAccuracy) ? v.testAccuracy : {};
    const runs = Array.isArray(v.runs) ? v.runs.filter(isObj) : [];
    return {
      recipe: strOr(inp.json.recipe),
      commit: strOr(inp.json.commit),
      name: strOr(v.name),
      label: strOr(v.label, strOr(v.name)),
      kind: strOr(v.kind),
      settings: isObj(v.settings) ? v.settings : {},
      mean: numOr(acc.mean),
      std: numOr(acc.std),
      n: numOr(acc.n, runs.length) ?? 0,
      values: runs.map((x) => numOr(x.testAccuracy)).filter((x): x is number => x !== null),
    };
  });
}

const meanStd = (v: VariantRow) =>
  v.mean === null
    ? NOT_RUN
    : `${pct(v.mean)}${v.std === null ? '' : ` ± ${pct(v.std)}`} (n = ${v.n})`;

/** t* of a variant: its own fine-tuning setting, else the recipe's. */
function tStarOf(v: VariantRow, recipe: Json): number | null {
  const ft = isObj(v.settings.finetune) ? v.settings.finetune : {};
  const settings = isObj(recipe.settings) ? recipe.settings : {};
  const rf =
    isObj(settings.finetune) && isObj(settings.finetune.hyperparameters)
      ? settings.finetune.hyperparameters
      : {};
  return (
    numOr(ft.tStar) ?? numOr(v.settings.tStar) ?? (v.kind === 'train' ? numOr(rf.tStar) : null)
  );
}

async function ablationsSection(r: Report, abl: ReportInput[]): Promise<void> {
  r.add('## Ablations');
  if (!abl.length) {
    r.add(
      `${NOT_RUN}: no ablation results. Each question of issue 16 (solver and steps, t*, λ·FM, flows, frozen flow and no pretraining, a supervised baseline) is ${NOT_RUN}.`,
    );
  }
  for (const inp of abl) {
    const a = inp.json.ablation as Json;
    const name = strOr(inp.json.recipe);
    const budget = isObj(a.budget) ? a.budget : {};
    r.add(
      `### ${name}${inp.json.complete === true ? '' : ' (partial)'}`,
      `Question: ${strOr(a.question, '—')}. Metric: ${strOr(a.metric, 'test accuracy')}. Seeds: ${Array.isArray(a.seeds) ? a.seeds.join(', ') : '—'}. ` +
        `Budget: ${Object.entries(budget)
          .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
          .map(([k, v]) => `${k} ${String(v)}`)
          .join(', ')}. Commit ${short(inp.json.commit)}, ${machineOf(inp.json)}.`,
    );
    const vs = variantsOf(inp);
    r.add(
      table(
        ['variant', 'kind', 'settings', 'test accuracy (%) mean ± std', 'per seed (%)'],
        vs.map((v) => [
          `${v.name}${v.name === a.reference ? ' (reference)' : ''}`,
          v.kind,
          JSON.stringify(v.settings),
          meanStd(v),
          v.values.map((x) => pct(x)).join(', ') || '—',
        ]),
      ),
    );
  }

  // Accuracy vs K: every evaluated variant with a numeric `steps` setting, by solver.
  r.add('### Accuracy vs number of steps K (and solver)');
  const kPts = abl.flatMap((inp) =>
    variantsOf(inp)
      .filter((v) => numOr(v.settings.steps) !== null && v.mean !== null)
      .map((v) => ({
        recipe: v.recipe,
        commit: v.commit,
        solver: strOr(v.settings.solver, '?'),
        K: numOr(v.settings.steps)!,
        accuracy: 100 * v.mean!,
        lo: 100 * (v.mean! - (v.std ?? 0)),
        hi: 100 * (v.mean! + (v.std ?? 0)),
      })),
  );
  r.add(
    `Paper (${PAPER_STEPS.where}, CIFAR-10):`,
    '',
    table(
      ['flow', ...PAPER_STEPS.steps.map((k) => `K = ${k}`)],
      PAPER_STEPS.rows.map((row) => [row.flow, ...row.accuracy.map((x) => x.toFixed(2))]),
    ),
    '',
    `Paper (${PAPER_CLAIMS.solvers.where}): ${PAPER_CLAIMS.solvers.claim}`,
  );
  if (!kPts.length) r.add(`Ours: ${NOT_RUN}.`);
  for (const recipe of [...new Set(kPts.map((p) => p.recipe))]) {
    const pts = kPts.filter((p) => p.recipe === recipe);
    await r.figure(
      `accuracy-vs-K-${slug(recipe)}`,
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: provenanceTitle(
          'Test accuracy vs solver steps K',
          `recipe ${recipe}`,
          pts[0].commit,
        ),
        data: { values: pts },
        encoding: {
          x: { field: 'K', type: 'quantitative', scale: { type: 'log' }, title: 'steps K (log)' },
          color: { field: 'solver', type: 'nominal' },
        },
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
            encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
          },
        ],
        width: 420,
        height: 240,
      },
      `Test accuracy (mean ± std over seeds) against K, recipe ${recipe}.`,
    );
  }

  r.add('### Accuracy vs t*');
  r.add(`Paper (${PAPER_CLAIMS.tStar.where}): ${PAPER_CLAIMS.tStar.claim}`);
  let anyT = false;
  for (const inp of abl) {
    const pts = variantsOf(inp)
      .map((v) => ({ v, t: tStarOf(v, inp.json) }))
      .filter(({ v, t }) => t !== null && v.mean !== null && v.kind === 'train');
    if (new Set(pts.map((p) => p.t)).size < 2) continue;
    anyT = true;
    const recipe = strOr(inp.json.recipe);
    await r.figure(
      `accuracy-vs-tstar-${slug(recipe)}`,
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: provenanceTitle('Test accuracy vs t*', `recipe ${recipe}`, strOr(inp.json.commit)),
        data: {
          values: pts.map(({ v, t }) => ({
            t,
            accuracy: 100 * v.mean!,
            lo: 100 * (v.mean! - (v.std ?? 0)),
            hi: 100 * (v.mean! + (v.std ?? 0)),
          })),
        },
        encoding: { x: { field: 't', type: 'quantitative', title: 't*' } },
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
            encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
          },
        ],
        width: 420,
        height: 240,
      },
      `Test accuracy (mean ± std over seeds) against the fine-tuning end time t*, recipe ${recipe}.`,
    );
  }
  if (!anyT) r.add(`Ours: ${NOT_RUN}.`);

  r.add('### Other claims of the paper');
  r.add(
    table(
      ['question', 'paper', 'where'],
      [
        [
          'frozen flow vs end-to-end',
          PAPER_FROZEN_GAP.map((g) => `${g.dataset}: +${g.gap.toFixed(2)} points end-to-end`).join(
            '; ',
          ),
          PAPER_FROZEN_GAP[0].where,
        ],
        ...(['lambda', 'flows', 'pretraining'] as const).map((k) => [
          k,
          PAPER_CLAIMS[k].claim,
          PAPER_CLAIMS[k].where,
        ]),
      ],
    ),
  );
  r.add('Our numbers for these are in the ablation tables above, where those recipes have run.');
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
            ['corr(x_0, x_1), mean over images', fmt(numOr(ns.correlationWithImage)), '—', '0'],
          ],
        ),
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

export async function buildReport(o: BuildReportOptions): Promise<BuiltReport> {
  const r = new Report(o);
  await fs.mkdir(o.figuresDir, { recursive: true });
  const by = (k: ReportInput['kind']) => o.inputs.filter((i) => i.kind === k);
  r.add(
    '# Results',
    `Generated by \`${o.command}\` at commit ${short(o.commit)} on ${(o.now ?? new Date()).toISOString()} (${o.machine}). ` +
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
  await curvesSection(r, [...by('recipe'), ...by('ablation')]);
  await ablationsSection(r, by('ablation'));
  await generationSection(r, by('analysis'));
  const markdown = r.parts.join('\n');
  await writeFileAtomic(o.out, new TextEncoder().encode(markdown));
  return { markdown, figures: r.figures };
}
