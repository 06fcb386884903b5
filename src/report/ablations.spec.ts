/**
 * The report on smoke-mode ablations of three kinds (src/prg/recipes/ablations.ts: solver and
 * steps, fine-tuning, λ), run here on synthetic data with their training logs written as `prg
 * recipe run` writes them: every section must be rendered — from the files' numbers where they
 * ran, "not run yet" with the command where not — the claims' verdicts must follow the stated
 * rule from those numbers, and the same inputs must give the same report.
 *
 * To keep the spec within minutes on a loaded 2-core machine, the smoke recipes keep one of
 * their two learning-rate candidates; both seeds stay (the std needs two).
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrainingReporter } from '../cli/progress';
import { AblationResults, runAblation } from '../prg/recipes/ablate';
import { ABLATIONS, smokeAblation } from '../prg/recipes/ablations';
import { tinyDataset } from '../prg/testing/tiny-data';
import { KINDS, VariantRow, compare, deltaText, kindOf, variantsOf } from './ablations';
import { NOT_RUN, buildReport } from './build';
import { claimRows } from './claims';
import { pct } from './format';
import { ReportInput, findInputs, readCurves } from './inputs';

/** The kinds run here (the others must show as not run). */
const RUN = ['solver', 'finetune', 'lambda'] as const;
let root: string;
let inputs: ReportInput[];
const results: Record<string, AblationResults> = {};

// Synthetic 28×28 data with MNIST's shape (no download); smoke numbers mean nothing.
const datasets = {
  train: tinyDataset({ n: 160, classes: 4, shape: [1, 28, 28], seed: 1 }),
  test: tinyDataset({ n: 64, classes: 4, shape: [1, 28, 28], seed: 2 }),
};

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-report-ablations-'));
  const recipes = join(root, 'runs', 'recipes');
  for (const kind of RUN) {
    const smoke = smokeAblation(ABLATIONS[`ablate-${kind}-mnist`]);
    const recipe = {
      ...smoke,
      finetune: { ...smoke.finetune, candidates: smoke.finetune.candidates.slice(0, 1) },
    };
    const dir = join(recipes, recipe.name);
    await fs.mkdir(dir, { recursive: true });
    // The recipe command's log: steps tagged with the stage (variant, seed, candidate) in progress.
    const log = new TrainingReporter({ log: join(dir, 'log.jsonl'), quiet: true });
    results[kind] = await runAblation({
      recipe,
      dir,
      unitsDir: join(recipes, 'ablation-units'),
      datasets,
      threads: 1,
      command: 'test',
      onStage: (e) => log.stage(e),
      onStep: (p) => log.step(p),
      onEpoch: (p) => log.epoch(p),
    });
  }
  inputs = await findInputs([recipes]);
}, 900_000);

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

const build = (name: string) =>
  buildReport({
    inputs,
    out: join(root, name, 'RESULTS.md'),
    figuresDir: join(root, name, 'results'),
    commit: 'f00dcafe',
    command: 'test',
    machine: 'test',
    now: new Date('2026-01-01T00:00:00Z'),
  });

/** The text of section `heading` (up to the next heading of the same or a higher level). */
function section(md: string, heading: string): string {
  const level = heading.split(' ')[0];
  const parts = md.split(`\n${heading}\n`);
  expect(parts.length, `section "${heading}" missing`).toBe(2);
  const next = parts[1].search(new RegExp(`\\n#{1,${level.length}} `));
  return next < 0 ? parts[1] : parts[1].slice(0, next);
}

const row = (v: VariantRow) =>
  `${pct(v.mean)} ± ${pct(v.std)} (n = 2) | ${v.values.map((x) => pct(x)).join(', ')} |`;

describe('report of smoke ablations of every kind', () => {
  it('finds one ablation of each kind run', () => {
    expect(inputs.map((i) => i.kind)).toEqual(RUN.map(() => 'ablation'));
    expect(inputs.map(kindOf).sort()).toEqual([...RUN].sort());
  });

  it('renders every section from the files, with the paper beside each, and a PNG per figure', async () => {
    const r = await build('a');
    const md = r.markdown;
    for (const s of [
      '## Recipes: test accuracy beside the paper',
      "## Which of the paper's claims hold at this scale",
      '## Training curves',
      '## Ablations',
      '## Generation: does the reverse process reach noise, and how good are the samples?',
    ])
      section(md, s);
    const titles = {
      solver: '### Solver and number of steps K',
      tstar: '### Feature time t*',
      flows: '### Flows: ICFM vs OT-CFM vs GVP',
      finetune: '### Fine-tuning: full vs frozen flow (head only) vs no pretraining',
      supervised: '### Supervised baseline of the same size and budget',
      lambda: '### Flow-matching term λ',
    };
    const ablations = section(md, '## Ablations');
    for (const kind of KINDS) {
      const s = section(`\n${ablations}`, titles[kind]);
      expect(s, kind).toContain('Paper (§');
      if (!(RUN as readonly string[]).includes(kind)) {
        expect(s, kind).toContain(
          `Ours: ${NOT_RUN} (\`npx prg recipe run ablate-${kind}-<dataset>\`)`,
        );
        continue;
      }
      expect(s, kind).not.toContain(NOT_RUN);
      const name = `ablate-${kind}-mnist-smoke`;
      const sub = section(`\n${s}`, `#### ${name}`);
      expect(sub).toContain(`Recipe ${name}, commit ${results[kind].commit.slice(0, 10)}`);
      // Every variant's mean ± std and per-seed values, as the results file has them.
      const inp = inputs.find((i) => i.json.recipe === name)!;
      for (const v of variantsOf(inp)) expect(sub, `${kind}/${v.name}`).toContain(row(v));
    }
    // The K × solver table: every solver a column, dopri5 on the adaptive row.
    const solver = section(`\n${ablations}`, titles.solver);
    expect(solver).toContain('| K | euler | midpoint | rk4 | dopri5 |');
    expect(solver).toMatch(/\| adaptive \| · \| · \| · \| [0-9.]+ ± [0-9.]+ \(n = 2\) \|/);
    expect(solver).toContain('| PRG-ICFM | 97.32 |');
    // The paper's numbers beside ours.
    expect(section(`\n${ablations}`, titles.finetune)).toContain('CIFAR-10 −47.10');

    const names = r.figures.map((f) => f.split('/').pop());
    expect(names).toContain('accuracy-vs-K-ablate-solver-mnist-smoke.png');
    for (const kind of RUN) expect(names).toContain(`curves-ablate-${kind}-mnist-smoke.png`);
    // Every figure names the recipe and commit it comes from.
    for (const kind of RUN)
      expect(md).toContain(
        `recipe ablate-${kind}-mnist-smoke, commit ${results[kind].commit.slice(0, 10)}`,
      );
    // Accuracy vs t* only for the t* question (the λ and frozen variants change other fields).
    expect(names.filter((n) => n!.startsWith('accuracy-vs-tstar'))).toHaveLength(0);
  }, 300_000);

  it('tests each claim by the stated rule on the files’ numbers', async () => {
    const rows = claimRows(inputs);
    // finetune: frozen and pretraining; solver: solvers and steps; λ.
    expect(rows).toHaveLength(5);
    const md = (await build('b')).markdown;
    const claims = section(md, "## Which of the paper's claims hold at this scale");
    for (const x of rows) {
      expect(claims).toContain(`| ${x.claim} | ${x.where} | mnist |`);
      expect(x.verdict).toMatch(/^(holds|does not hold|not resolved|undetermined)/);
    }
    // Recompute one verdict: end to end vs frozen, from the finetune ablation's file.
    const ft = variantsOf(inputs.find((i) => kindOf(i) === 'finetune')!);
    const c = compare(
      ft.find((v) => v.name === 'prg'),
      ft.find((v) => v.name === 'frozen'),
    );
    const want =
      Math.abs(c.delta!) > ft[0].std! + ft[1].std!
        ? c.delta! > 0
          ? 'holds'
          : 'does not hold'
        : 'not resolved';
    const frozen = rows.find((x) => x.claim.startsWith('end-to-end fine-tuning'))!;
    expect(frozen.verdict.startsWith(want)).toBe(true);
    expect(frozen.ours).toContain(deltaText(c));
  }, 300_000);

  it('draws one curve per stage from the tagged log, pretrain and fine-tune apart', async () => {
    const inp = inputs.find((i) => kindOf(i) === 'finetune')!;
    const pts = await readCurves(inp.logs);
    const series = new Set(pts.map((p) => `${p.phase}: ${p.series}`));
    // This ablation trained frozen and scratch itself (prg's units may come from an earlier kind).
    for (const v of ['frozen', 'scratch'])
      for (const seed of [0, 1])
        expect(series).toContain(`finetune: ${v} · seed ${seed} · lr candidate 0`);
    // Each series is one run: its steps strictly increase.
    for (const s of series) {
      const steps = pts.filter((p) => `${p.phase}: ${p.series}` === s).map((p) => p.step);
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      expect(new Set(steps).size).toBe(steps.length);
    }
    const first = inputs.find((i) => kindOf(i) === KINDS[0])!;
    const firstPts = await readCurves(first.logs);
    expect(firstPts.some((p) => p.phase === 'pretrain' && p.series === 'flow icfm · seed 0')).toBe(
      true,
    );
  });

  it('gives the same markdown and figures for the same inputs', async () => {
    const a = await build('c');
    const b = await build('d');
    expect(b.markdown.split('results/').length).toBe(a.markdown.split('results/').length);
    expect(b.markdown).toBe(a.markdown);
    for (const [i, f] of a.figures.entries())
      expect((await fs.readFile(b.figures[i])).equals(await fs.readFile(f)), f).toBe(true);
  }, 300_000);
});

describe('comparisons', () => {
  const v = (mean: number | null, std: number | null, n = 2): VariantRow => ({
    recipe: 'r',
    commit: 'c',
    name: 'v',
    label: 'v',
    kind: 'train',
    settings: {},
    mean,
    std,
    n,
    values: [],
  });
  it('resolves a difference only beyond the sum of the stds, with ≥ 2 seeds each', () => {
    expect(compare(v(0.9, 0.01), v(0.85, 0.02))).toEqual({ delta: 0.9 - 0.85, resolved: true });
    expect(compare(v(0.9, 0.03), v(0.88, 0.02)).resolved).toBe(false);
    expect(compare(v(0.9, null, 1), v(0.5, 0.01)).resolved).toBeNull();
    expect(compare(v(null, null, 0), v(0.5, 0.01))).toEqual({ delta: null, resolved: null });
    expect(deltaText(compare(v(0.88, 0.02), v(0.9, 0.03)))).toBe('−2.00 (within spread)');
  });
});
