/**
 * The report on real (smoke-sized) results: a smoke recipe run with its training log, `prg
 * analyze` of a tiny model, and an ablation results file in the documented shape. The report must
 * write its tables with the files' numbers, render every figure as a PNG, and say "not run yet"
 * where results are missing.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrainingReporter } from '../cli/progress';
import { analyzeModel } from '../prg/generation/analysis';
import { loadPrgModel } from '../prg/inference';
import { RECIPES, smokeRecipe } from '../prg/recipes/definitions';
import { RecipeResults, runRecipe } from '../prg/recipes/run';
import { tinyDataset } from '../prg/testing/tiny-data';
import { createTinyModel } from '../prg/testing/tiny-model';
import { NOT_RUN, buildReport } from './build';
import { findInputs, readCurves } from './inputs';

let root: string;
let recipe: RecipeResults;

/** An ablation block as ablation recipes write it (docs/generation.md, "Report inputs"). */
const ablation = {
  recipe: 'ablate-steps-fixture',
  version: 1,
  complete: true,
  commit: 'abcdef0123456789',
  machine: { cpus: 2, cpu: 'test CPU', memoryGiB: 24 },
  stages: {},
  ablation: {
    question: 'does accuracy depend on K and the solver?',
    metric: 'accuracy on the first 64 images of tiny:test',
    reference: 'prg',
    seeds: [0, 1],
    budget: { trainImages: 160, pretrainSteps: 4 },
    variants: [
      {
        name: 'prg',
        label: 'PRG (t* 0.5)',
        kind: 'train',
        settings: { interpolant: 'icfm', pretrained: true, finetune: {} },
        runs: [
          { seed: 0, testAccuracy: 0.5 },
          { seed: 1, testAccuracy: 0.75 },
        ],
        testAccuracy: { mean: 0.625, std: 0.1767766952966369, n: 2 },
      },
      {
        name: 't025',
        label: 't* 0.25',
        kind: 'train',
        settings: { interpolant: 'icfm', pretrained: true, finetune: { tStar: 0.25 } },
        runs: [{ seed: 0, testAccuracy: 0.4 }],
        testAccuracy: { mean: 0.4, std: null, n: 1 },
      },
      ...[1, 3, 10].map((k, i) => ({
        name: `euler-${k}`,
        label: `Euler K=${k}`,
        kind: 'eval',
        settings: { of: 'prg', solver: 'euler', steps: k },
        runs: [{ seed: 0, testAccuracy: 0.5 + i / 10 }],
        testAccuracy: { mean: 0.5 + i / 10, std: null, n: 1 },
      })),
    ],
  },
  settings: { finetune: { hyperparameters: { tStar: 0.5 } } },
};

/** One side's line of bench/tta.ts: median step [wall, CPU] ms, accuracy at steps 10 and 20. */
const ttaSide = (side: string, ms: number[], acc: number[], at10: number[]) => ({
  side,
  steps: 20,
  step_wall_ms_median: ms[0],
  step_cpu_ms_median: ms[1],
  final_accuracy: acc[1],
  load_before: [1, 1, 1],
  load_after: [2, 2, 2],
  curve: [
    [0, 0, 0, 0.076],
    [10, at10[0], at10[1], acc[0]],
    [20, 2 * at10[0], 2 * at10[1], acc[1]],
  ],
});

/** bench/tta.ts's output file (TTA_OUT), in the shape it writes. */
const tta = {
  kind: 'prg.tta/v1',
  commit: '0123456789abcdef',
  command: 'BENCH_SHORT=1 node dist/bench/tta.js',
  machine: { cpus: 2, cpu: 'test CPU', memoryGiB: 24 },
  createdAt: '2026-12-06T01:00:00.000Z',
  lines: [
    ttaSide('prg', [410.5, 395.25], [0.776, 0.882], [4.1, 3.9]),
    {
      ...ttaSide('torch', [620.75, 600.5], [0.752, 0.864], [6.2, 6.0]),
      torch_version: '2.13.0+cpu',
    },
    {
      threshold: 0.8,
      prg_step: 20,
      prg_wall_s: 8.2,
      prg_cpu_s: 7.9,
      torch_step: 20,
      torch_wall_s: 12.4,
      torch_cpu_s: 12,
      wall_ratio_prg_over_torch: 0.6613,
      cpu_ratio_prg_over_torch: 0.6583,
    },
    {
      summary: true,
      step_cpu_ratio_prg_over_torch: 0.6582,
      step_wall_ratio_prg_over_torch: 0.6613,
      forward_max_abs_diff: { features: 1.4e-5, logits: 2.3e-6 },
      torch_version: '2.13.0+cpu',
      recipe: {
        batch: 64,
        k: 3,
        tStar: 0.5,
        solver: 'euler',
        lr: 0.001,
        lambdaFlow: 1,
        threads: 1,
        evalImages: 500,
        evalEvery: 10,
      },
    },
  ],
};

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-report-'));
  const tdir = join(root, 'runs', 'tta', 'short');
  await fs.mkdir(tdir, { recursive: true });
  await fs.writeFile(join(tdir, 'tta.json'), JSON.stringify(tta));
  // 1. A smoke recipe run with its JSONL log, as `prg recipe run mnist --smoke --log` writes it.
  const dir = join(root, 'runs', 'recipes', 'mnist-smoke');
  await fs.mkdir(dir, { recursive: true });
  const log = new TrainingReporter({ log: join(dir, 'log.jsonl'), quiet: true });
  recipe = await runRecipe({
    recipe: smokeRecipe(RECIPES.mnist),
    dir,
    threads: 1,
    command: 'test',
    datasets: {
      train: tinyDataset({ n: 160, classes: 4, shape: [1, 28, 28], seed: 1 }),
      test: tinyDataset({ n: 64, classes: 4, shape: [1, 28, 28], seed: 2 }),
      oodValidation: tinyDataset({ n: 32, classes: 2, shape: [1, 28, 28], seed: 3 }),
    },
    onStage: (e) => log.stage(e),
    onStep: (p) => log.step(p),
  });
  // 2. An ablation results file.
  const adir = join(root, 'runs', 'recipes', 'ablate-steps-fixture');
  await fs.mkdir(adir, { recursive: true });
  await fs.writeFile(join(adir, 'results.json'), JSON.stringify(ablation));
  // 3. `prg analyze` of a tiny model, with itself as the feature classifier.
  const mdir = join(root, 'model');
  await createTinyModel(mdir, {
    classes: 2,
    inputShape: [1, 8, 8],
    ood: {
      primary: 'msp',
      scores: { msp: { threshold: 0.5, tpr: 0.95, higherIsInDistribution: true } },
    },
  });
  const model = await loadPrgModel(mdir, { threads: 1 });
  try {
    await analyzeModel({
      model,
      modelDir: mdir,
      out: join(root, 'runs', 'analysis', 'tiny'),
      data: 'tiny:test',
      oodData: 'tiny:ood',
      featureModelDir: mdir,
      n: 8,
      steps: [1, 2],
      reverseSteps: 2,
      threads: 1,
      command: 'test analyze',
      datasets: {
        test: tinyDataset({ n: 16, classes: 2, shape: [1, 8, 8], seed: 4 }),
        ood: tinyDataset({ n: 8, classes: 2, shape: [1, 8, 8], seed: 5 }),
      },
    });
  } finally {
    await model.release();
  }
}, 600_000);

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe('prg report', () => {
  it('finds the four kinds of results files', async () => {
    const inputs = await findInputs([
      join(root, 'runs', 'recipes'),
      join(root, 'runs', 'analysis'),
      join(root, 'runs', 'tta'),
    ]);
    expect(inputs.map((i) => i.kind).sort()).toEqual(['ablation', 'analysis', 'recipe', 'tta']);
    expect(inputs.find((i) => i.kind === 'recipe')!.logs).toHaveLength(1);
  });

  it('writes tables with the files’ numbers and a PNG per figure', async () => {
    const inputs = await findInputs([
      join(root, 'runs', 'recipes'),
      join(root, 'runs', 'analysis'),
      join(root, 'runs', 'tta'),
    ]);
    const out = join(root, 'docs', 'RESULTS.md');
    const figuresDir = join(root, 'docs', 'results');
    const r = await buildReport({
      inputs,
      out,
      figuresDir,
      commit: 'f00dcafe',
      command: 'test',
      machine: 'test',
    });
    const md = await fs.readFile(out, 'utf8');
    expect(md).toBe(r.markdown);

    // The recipe's test accuracy and commit, as the results file has them.
    const acc = (100 * recipe.testAccuracy!).toFixed(2);
    expect(md).toMatch(
      new RegExp(`\\| mnist-smoke \\| 1 \\| yes \\| ${acc.replace('.', '\\.')} \\|`),
    );
    expect(md).toContain(recipe.commit.slice(0, 10));
    // Beside issue 16's target for the full recipe; a smoke run's verdict is marked as such.
    expect(md).toMatch(/\| 64 \| ≥ 99\.30 \| (yes|no) \(smoke run: not meaningful\) \|/);
    // The paper's numbers beside ours.
    expect(md).toContain('| CIFAR-10 | 97.59 |');
    expect(md).toContain('| PRG-ICFM | 97.32 | 97.33 | 97.34 | 97.34 | 97.34 |');
    // The ablation table: mean ± std and per-seed values from the file.
    expect(md).toContain('| prg (reference) | PRG (t* 0.5) | train |');
    expect(md).toContain('62.50 ± 17.68 (n = 2) | 50.00, 75.00 |');
    // Generation: the noise statistics and FIDs of analysis.json.
    const analysis = JSON.parse(
      await fs.readFile(join(root, 'runs', 'analysis', 'tiny', 'analysis.json'), 'utf8'),
    );
    expect(md).toContain(
      `| mean | ${analysis.noiseStats.mean.toFixed(4)} | ${analysis.noiseStats.reference.mean.toFixed(4)} | 0 |`,
    );
    for (const row of analysis.sampleQuality.rows)
      expect(md).toContain(`| ${row.solver} | ${row.steps} | ${row.fid.toFixed(2)} |`);
    expect(md).toContain('FID in TINY classifier features');
    // Time to accuracy: the threshold row, the per-side medians and the provenance of tta.json.
    expect(md).toContain('| 80 % | 20 | 7.9 | 8.2 | 20 | 12.0 | 12.4 | 0.66 | 0.66 |');
    expect(md).toContain('| this engine (ONNX Runtime) | 20 | 395.3 | 410.5 | 88.2 |');
    expect(md).toContain('| PyTorch | 20 | 600.5 | 620.8 | 86.4 |');
    expect(md).toContain('PyTorch 2.13.0+cpu');
    expect(md).toContain('commit 0123456789');

    // Figures: training curves, accuracy vs K and vs t*, FID vs K, OOD histogram (rendered), and
    // the trajectory and sample grids (copied): each a PNG linked from the markdown.
    const names = r.figures.map((f) => f.slice(figuresDir.length + 1));
    for (const want of [
      'curves-mnist-smoke.png',
      'accuracy-vs-K-ablate-steps-fixture.png',
      'accuracy-vs-tstar-ablate-steps-fixture.png',
      'fid-vs-K-tiny-0.0.1.png',
      'ood-hist-tiny-0.0.1.png',
      'trajectories-tiny-0.0.1.png',
      'samples-tiny-0.0.1-euler-1.png',
      'samples-tiny-0.0.1-euler-2.png',
      'tta.png',
    ])
      expect(names).toContain(want);
    for (const f of r.figures) {
      const meta = await sharp(f).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(20);
      expect(md).toContain(`(results/${f.slice(figuresDir.length + 1)})`);
    }
  });

  it('removes the figures of its previous run that it no longer links, and no other file', async () => {
    const out = join(root, 'prune', 'RESULTS.md');
    const figuresDir = join(root, 'prune', 'results');
    await fs.mkdir(figuresDir, { recursive: true });
    const own = join(figuresDir, 'not-the-reports.png');
    await fs.writeFile(own, 'kept');
    const build = async (inputs: Awaited<ReturnType<typeof findInputs>>) =>
      buildReport({ inputs, out, figuresDir, commit: 'x', command: 'test', machine: 'test' });
    const first = await build(await findInputs([join(root, 'runs', 'tta')]));
    expect(first.figures.map((f) => f.slice(figuresDir.length + 1))).toEqual(['tta.png']);
    expect(first.removed).toEqual([]);
    // The tta results are gone: its figure goes with them; a file the report did not write stays.
    const second = await build([]);
    expect(second.removed).toEqual(['tta.png']);
    expect((await fs.readdir(figuresDir)).sort()).toEqual(['.figures.json', 'not-the-reports.png']);
    expect(await fs.readFile(own, 'utf8')).toBe('kept');
  });

  it('draws one curve per recipe stage, and reads logs without stage fields as before', async () => {
    const dir = join(root, 'runs', 'recipes', 'mnist-smoke');
    const pts = await readCurves([join(dir, 'log.jsonl')]);
    const series = [...new Set(pts.map((p) => `${p.phase}: ${p.series}`))];
    expect(series).toEqual(['pretrain: pretrain', 'finetune: finetune-0', 'finetune: finetune-1']);
    // A log of before the stage fields: a new series where the phase changes or the step goes back.
    const old = join(root, 'old.jsonl');
    const line = (phase: string, globalStep: number) =>
      JSON.stringify({ event: 'step', phase, globalStep, loss: 1 / globalStep });
    await fs.writeFile(
      old,
      [
        line('pretrain', 1),
        line('pretrain', 2),
        line('finetune', 1),
        line('finetune', 2),
        line('finetune', 1),
        '{"event":"epoch"}',
        'not json',
      ].join('\n'),
    );
    expect((await readCurves([old])).map((p) => `${p.phase}/${p.series}/${p.step}`)).toEqual([
      'pretrain/pretrain/1',
      'pretrain/pretrain/2',
      'finetune/finetune/1',
      'finetune/finetune/2',
      'finetune/finetune #2/1',
    ]);
  });

  it('says "not run yet" where there are no results, and invents nothing', async () => {
    const out = join(root, 'empty', 'RESULTS.md');
    const r = await buildReport({
      inputs: [],
      out,
      figuresDir: join(root, 'empty', 'results'),
      commit: 'x',
      command: 'test',
      machine: 'test',
    });
    expect(r.figures).toEqual([]);
    for (const section of [
      '## Recipes',
      "## Which of the paper's claims",
      '## Training curves',
      '## Ablations',
      '## Time to accuracy',
      '## Generation',
    ])
      expect(r.markdown.split(section)[1].split('\n## ')[0]).toContain(NOT_RUN);
    // Only the paper's numbers appear: no percentage of ours.
    expect(r.markdown).not.toMatch(/\| mnist/);
  });
});
