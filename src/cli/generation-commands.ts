/**
 * Generation and its checks (docs/generation.md):
 *
 *   prg sample      --model DIR --n 64 --steps K --solver S --seed N --out grid.png [--npy F --json F]
 *   prg noise-stats --model DIR --data SPEC [--limit N --steps K --solver S --json]
 *   prg analyze     --model DIR --data SPEC --out DIR [--feature-model DIR --ood-data SPEC ...]
 */
import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../engine/runtime/checkpoint';
import { analyzeModel } from '../prg/generation/analysis';
import { imageGridPng } from '../prg/generation/grid';
import { NoiseStats, reverseNoiseStats } from '../prg/generation/noise-stats';
import { loadPrgModel } from '../prg/inference';
import { oodScorerFactory } from '../prg/ood';
import { SOLVER_NAMES, SolverName } from '../prg/manifest';
import { loadDatasetFor } from '../prg/training/evaluate';
import { OptionSpec, UsageError, choice, flag, num, parse, required, str } from './args';
import { COMMON, session } from './common';
import { npy } from './npy';

export const GENERATION_HELP: Record<string, string> = {
  sample: `prg sample --model DIR --out grid.png [--n 64 --steps 20 --solver euler|midpoint|rk4|dopri5 --seed 0]
  Generates n images by the forward ODE from seeded noise x_1 ~ N(0, I) at t = 1 to t = 0 and
  writes them as one PNG grid. --class C: the class index, only for a class-conditional model.
  --npy FILE: also the raw float32 [n, C, H, W] (model input space, [-1, 1]); --cols N --scale N`,
  'noise-stats': `prg noise-stats --model DIR --data SPEC [--limit 1000 --steps 20 --solver euler --json]
  x_1 = the reverse ODE of the images to t = 1, against N(0, I): mean, std, per-pixel skew and
  excess kurtosis, the KS statistic, and the same for a seeded N(0, I) sample of equal size.`,
  analyze: `prg analyze --model DIR --data SPEC --out DIR [--feature-model DIR --ood-data SPEC
            --n 1000 --k 1,2,5,10,20 --solvers euler --reverse-steps 20 --seed 0]
  Writes DIR/analysis.json (noise statistics, FID in the feature model's classifier features per
  solver and K, OOD scores in vs out) and PNGs (sample grids, reverse trajectories) for prg report.`,
};

const SAMPLE_OPTIONS: OptionSpec = {
  ...COMMON,
  model: { type: 'string' },
  out: { type: 'string' },
  n: { type: 'string' },
  steps: { type: 'string' },
  solver: { type: 'string' },
  seed: { type: 'string' },
  class: { type: 'string' },
  npy: { type: 'string' },
  cols: { type: 'string' },
  scale: { type: 'string' },
};

function help(name: string): number {
  process.stdout.write(GENERATION_HELP[name] + '\n');
  return 0;
}

export async function sampleCommand(argv: string[]): Promise<number> {
  const v = parse(argv, SAMPLE_OPTIONS, 'sample');
  if (flag(v, 'help')) return help('sample');
  const dir = required(v, 'model', 'sample');
  const out = required(v, 'out', 'sample');
  const n = num(v, 'n', { int: true, min: 1, max: 10000 }) ?? 64;
  const opts = {
    n,
    steps: num(v, 'steps', { int: true, min: 1, max: 1000 }),
    solver: choice(v, 'solver', SOLVER_NAMES),
    seed: num(v, 'seed', { int: true, min: 0 }),
    classLabel: num(v, 'class', { int: true, min: 0 }),
  };
  const model = await loadPrgModel(dir, session(v));
  try {
    const t0 = Date.now();
    const s = await model.sample(opts);
    const seconds = (Date.now() - t0) / 1000;
    const png = await imageGridPng(s.data, s.shape, {
      cols: num(v, 'cols', { int: true, min: 1 }),
      scale: num(v, 'scale', { int: true, min: 1, max: 16 }),
    });
    await writeFileAtomic(out, png);
    const npyOut = str(v, 'npy');
    if (npyOut) await writeFileAtomic(npyOut, npy(s.data, s.shape));
    process.stdout.write(
      JSON.stringify({
        model: model.id,
        out,
        ...(npyOut ? { npy: npyOut } : {}),
        shape: s.shape,
        ...opts,
        seconds,
      }) + '\n',
    );
    return 0;
  } finally {
    await model.release();
  }
}

const STATS_OPTIONS: OptionSpec = {
  ...COMMON,
  model: { type: 'string' },
  data: { type: 'string' },
  limit: { type: 'string' },
  steps: { type: 'string' },
  solver: { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
};

function statsTable(s: NoiseStats): string {
  const f = (x: number) => x.toFixed(4);
  const r = s.reference;
  const row = (name: string, a: string, b: string) =>
    `  ${name.padEnd(34)} ${a.padStart(9)} ${b.padStart(9)}`;
  return [
    `x_1 of ${s.n} images (${s.dim} values each), ${s.solver} K = ${s.steps}:`,
    row('', 'x_1', 'N(0,I)'),
    row('mean', f(s.mean), f(r.mean)),
    row('std', f(s.std), f(r.std)),
    row('per-pixel mean, max |.|', f(s.pixelMean.maxAbs), f(r.pixelMean.maxAbs)),
    row('per-pixel std, mean', f(s.pixelStd.mean), f(r.pixelStd.mean)),
    row('per-pixel skew, mean', f(s.pixelSkew.mean), f(r.pixelSkew.mean)),
    row('per-pixel skew, max |.|', f(s.pixelSkew.maxAbs), f(r.pixelSkew.maxAbs)),
    row(
      'per-pixel excess kurtosis, mean',
      f(s.pixelExcessKurtosis.mean),
      f(r.pixelExcessKurtosis.mean),
    ),
    row(
      'per-pixel excess kurtosis, max |.|',
      f(s.pixelExcessKurtosis.maxAbs),
      f(r.pixelExcessKurtosis.maxAbs),
    ),
    row('KS statistic (pooled values)', f(s.ks), f(r.ks)),
    row(
      'corr(x_0, x_1), mean over images',
      s.correlationWithImage === null ? '—' : f(s.correlationWithImage),
      '—',
    ),
    row(
      '  the same, exact Gaussian-fit flow',
      s.gaussianFlowCorrelation === null ? '—' : f(s.gaussianFlowCorrelation),
      '—',
    ),
    ...(s.gaussianFlow
      ? [
          `Exact flow of a diagonal Gaussian fit of the same images (no net):`,
          row('', 'std', 'KS'),
          row(
            `  by ${s.solver} K = ${s.steps}`,
            f(s.gaussianFlow.solved.std),
            f(s.gaussianFlow.solved.ks),
          ),
          row('  in closed form', f(s.gaussianFlow.exact.std), f(s.gaussianFlow.exact.ks)),
        ]
      : []),
  ].join('\n');
}

export async function noiseStatsCommand(argv: string[]): Promise<number> {
  const v = parse(argv, STATS_OPTIONS, 'noise-stats');
  if (flag(v, 'help')) return help('noise-stats');
  const dir = required(v, 'model', 'noise-stats');
  const spec = required(v, 'data', 'noise-stats');
  const limit = num(v, 'limit', { int: true, min: 2 }) ?? 1000;
  const model = await loadPrgModel(dir, session(v));
  try {
    const ds = await loadDatasetFor(spec, model.manifest, { limit });
    const n = Math.min(limit, ds.n);
    const d = ds.shape[0] * ds.shape[1] * ds.shape[2];
    const x = Float32Array.from(ds.images.subarray(0, n * d), (p) => p / 127.5 - 1);
    const s = await reverseNoiseStats(model, x, n, {
      steps: num(v, 'steps', { int: true, min: 1, max: 1000 }) ?? 20,
      solver: choice(v, 'solver', SOLVER_NAMES) ?? 'euler',
      seed: num(v, 'seed', { int: true, min: 0 }),
    });
    const rec = { model: model.id, data: spec, ...s };
    process.stdout.write(
      flag(v, 'json') ? JSON.stringify(rec) + '\n' : `${model.id} on ${spec}\n${statsTable(s)}\n`,
    );
    return 0;
  } finally {
    await model.release();
  }
}

const ANALYZE_OPTIONS: OptionSpec = {
  ...COMMON,
  model: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  'feature-model': { type: 'string' },
  'ood-data': { type: 'string' },
  n: { type: 'string' },
  k: { type: 'string' },
  solvers: { type: 'string' },
  'reverse-steps': { type: 'string' },
  seed: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
};

function intList(v: string | undefined, flagName: string): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (!xs.length || xs.some((x) => !Number.isInteger(x) || x < 1 || x > 1000))
    throw new UsageError(`--${flagName}=${v}: expected comma-separated integers in [1, 1000]`);
  return xs;
}

export async function analyzeCommand(argv: string[]): Promise<number> {
  const v = parse(argv, ANALYZE_OPTIONS, 'analyze');
  if (flag(v, 'help')) return help('analyze');
  const dir = required(v, 'model', 'analyze');
  const data = required(v, 'data', 'analyze');
  const out = required(v, 'out', 'analyze');
  const solvers = str(v, 'solvers')
    ?.split(',')
    .map((s) => s.trim());
  if (solvers?.some((s) => !(SOLVER_NAMES as readonly string[]).includes(s)))
    throw new UsageError(`--solvers=${str(v, 'solvers')}: use ${SOLVER_NAMES.join(', ')}`);
  // With the model's OOD scorers (ood.json), so its primary score is the one histogrammed.
  const model = await loadPrgModel(dir, { ...session(v), oodFactories: [oodScorerFactory] });
  try {
    await fs.mkdir(out, { recursive: true });
    const r = await analyzeModel({
      model,
      modelDir: dir,
      out,
      data,
      oodData: str(v, 'ood-data'),
      featureModelDir: str(v, 'feature-model'),
      n: num(v, 'n', { int: true, min: 2, max: 5000 }),
      steps: intList(str(v, 'k'), 'k'),
      solvers: solvers as SolverName[] | undefined,
      reverseSteps: num(v, 'reverse-steps', { int: true, min: 1, max: 1000 }),
      seed: num(v, 'seed', { int: true, min: 0 }),
      threads: session(v).threads,
      onProgress: (w) => {
        if (!flag(v, 'quiet')) process.stderr.write(`analyze: ${w}\n`);
      },
    });
    process.stdout.write(
      `${r.model}: ${out}/analysis.json` +
        (r.sampleQuality
          ? `; FID in ${r.sampleQuality.featureModel}: ` +
            r.sampleQuality.rows
              .map((x) => `${x.solver} K=${x.steps} ${x.fid.toFixed(2)}`)
              .join(', ') +
            ` (test vs test ${r.sampleQuality.realVsReal.toFixed(2)})`
          : '') +
        '\n',
    );
    return 0;
  } finally {
    await model.release();
  }
}
