/**
 * The `prg` command (bin/prg.js → dist/src/cli/main.js):
 *
 *   prg pretrain --data mnist:train --out models/mnist-flow [--resume] ...
 *   prg finetune --model models/mnist-flow --data mnist:train --out models/mnist ...
 *   prg eval     --model models/mnist --data mnist:test [--json]
 *   prg features --model models/mnist --data mnist:test --out feats.npy [--t 0.5 --pool 7]
 *   prg import sit|torchcfm-unet --checkpoint FILE --out DIR ...   (src/cli/import-command.ts)
 *   prg recipe run mnist [--resume] [--smoke]   (recipe-command.ts)
 *   prg sample | noise-stats | analyze            (generation-commands.ts)
 *   prg report [DIR...]                           (report-command.ts)
 *
 * Exit codes: 0 ok, 1 runtime error, 2 usage error (unknown flag, bad value), 130 interrupted
 * (Ctrl-C: the run wrote a checkpoint first; rerun with --resume).
 */
import * as os from 'node:os';
import { writeFileAtomic } from '../engine/runtime/checkpoint';
import { loadPrgModel } from '../prg/inference';
import { updateManifest } from '../prg/model-dir/io';
import { SolverName } from '../prg/manifest';
import { evaluateModel, labelMap, loadDatasetFor } from '../prg/training/evaluate';
import { PRETRAIN_DEFAULTS, pretrain } from '../prg/training/pretrain';
import { OptionSpec, UsageError, choice, flag, num, parse, pool, required, str } from './args';
import { COMMON, session } from './common';
import { runTrainingCommand } from './training-run';
import { FINETUNE_HELP, finetuneCommand } from './finetune-command';
import { OOD_BENCH_HELP, oodBenchCommand } from './ood-bench';
import { OOD_HELP, oodEvalCommand, oodFitCommand } from './ood-eval';
import { IMPORT_HELP, importCommand } from './import-command';
import { RECIPE_HELP, recipeCommand } from './recipe-command';
import { npy } from './npy';
import {
  GENERATION_HELP,
  analyzeCommand,
  noiseStatsCommand,
  sampleCommand,
} from './generation-commands';
import { REPORT_HELP, reportCommand } from './report-command';

const SOLVERS: readonly SolverName[] = ['euler', 'midpoint', 'rk4', 'dopri5'];

const PRETRAIN_OPTIONS: OptionSpec = {
  ...COMMON,
  data: { type: 'string' },
  out: { type: 'string' },
  'checkpoint-dir': { type: 'string' },
  resume: { type: 'boolean' },
  overwrite: { type: 'boolean' },
  net: { type: 'string' },
  preset: { type: 'string' },
  interpolant: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  'ema-decay': { type: 'string' },
  'grad-clip': { type: 'string' },
  seed: { type: 'string' },
  limit: { type: 'string' },
  'checkpoint-every': { type: 'string' },
  'checkpoint-minutes': { type: 'string' },
  'max-steps': { type: 'string' },
  head: { type: 'string' },
  hidden: { type: 'string' },
  pool: { type: 'string' },
  solver: { type: 'string' },
  steps: { type: 'string' },
  't-star': { type: 'string' },
  name: { type: 'string' },
  'model-version': { type: 'string' },
  log: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
};

const HELP: Record<string, string> = {
  pretrain: `prg pretrain --data SPEC --out DIR [options]
  Flow-matching pre-training (paper eq. 2). Writes DIR (velocity + untrained head).
  --checkpoint-dir DIR   default DIR.ckpt; --resume continues its checkpoint
  --net unet|dit --preset XS   --interpolant icfm|otcfm|gvp
  --epochs N (10) --batch-size N (128) --lr X (1e-4) --ema-decay X (0.999) --grad-clip X (1)
  --seed N --limit N --checkpoint-every N (200) --checkpoint-minutes M (10) --max-steps N
  --head mlp|pooled --hidden N (256) --pool none|N   --solver S --steps K --t-star T
  --name NAME --model-version V --log FILE.jsonl --quiet --json --threads N --device cpu|cuda`,
  finetune: FINETUNE_HELP,
  eval: `prg eval --model DIR --data SPEC [--steps K --solver S --limit N --batch-size N --json]\n  --record   store the accuracy in the model's manifest.metrics with this command line`,
  features: `prg features --model DIR --data SPEC --out FILE.npy [--t T --pool none|N --steps K --solver S --limit N]
  Writes the features as a float32 .npy [n, D] and the labels as FILE.labels.npy (int32).`,
};

async function pretrainCommand(argv: string[]): Promise<number> {
  const v = parse(argv, PRETRAIN_OPTIONS, 'pretrain');
  if (flag(v, 'help')) return help('pretrain');
  const out = required(v, 'out', 'pretrain');
  const d = PRETRAIN_DEFAULTS;
  const headKind = choice(v, 'head', ['mlp', 'pooled'] as const) ?? d.head.kind;
  const featurePool = pool(v, 'pool');
  const opts = {
    data: required(v, 'data', 'pretrain'),
    out,
    overwrite: flag(v, 'overwrite'),
    checkpointDir: str(v, 'checkpoint-dir') ?? `${out}.ckpt`,
    resume: flag(v, 'resume'),
    net: {
      kind: choice(v, 'net', ['unet', 'dit'] as const) ?? d.net.kind,
      preset: str(v, 'preset') ?? d.net.preset,
    },
    interpolant: choice(v, 'interpolant', ['icfm', 'otcfm', 'gvp'] as const) ?? d.interpolant,
    epochs: num(v, 'epochs', { int: true, min: 1 }),
    batchSize: num(v, 'batch-size', { int: true, min: 1 }),
    lr: num(v, 'lr', { min: 0, exclusiveMin: true }),
    emaDecay: num(v, 'ema-decay', { min: 0, max: 1 }),
    gradClip: num(v, 'grad-clip', { min: 0 }),
    seed: num(v, 'seed', { int: true, min: 0 }),
    limit: num(v, 'limit', { int: true, min: 1 }),
    checkpointEvery: num(v, 'checkpoint-every', { int: true, min: 1 }),
    checkpointMinutes: num(v, 'checkpoint-minutes', { min: 0, exclusiveMin: true }),
    maxSteps: num(v, 'max-steps', { int: true, min: 1 }),
    head: {
      kind: headKind,
      hidden: num(v, 'hidden', { int: true, min: 1 }) ?? d.head.hidden,
      featurePool: featurePool === undefined ? d.head.featurePool : featurePool,
    },
    solver: {
      name: choice(v, 'solver', SOLVERS) ?? d.solver.name,
      steps: num(v, 'steps', { int: true, min: 1, max: 1000 }) ?? d.solver.steps,
      tStar: num(v, 't-star', { min: 0, max: 1, exclusiveMin: true }) ?? d.solver.tStar,
    },
    name: str(v, 'name'),
    version: str(v, 'model-version'),
    ...session(v),
  };
  return runTrainingCommand(
    'pretrain',
    v,
    opts,
    (hooks) => pretrain({ ...opts, ...hooks }),
    (res) =>
      `pretrained ${res.steps} steps (final loss ${res.finalLoss.toFixed(4)}) → ${res.modelDir}`,
  );
}

const EVAL_OPTIONS: OptionSpec = {
  ...COMMON,
  model: { type: 'string' },
  data: { type: 'string' },
  steps: { type: 'string' },
  solver: { type: 'string' },
  limit: { type: 'string' },
  'batch-size': { type: 'string' },
  resize: { type: 'boolean' },
  json: { type: 'boolean' },
  record: { type: 'boolean' },
};

async function evalCommand(argv: string[]): Promise<number> {
  const v = parse(argv, EVAL_OPTIONS, 'eval');
  if (flag(v, 'help')) return help('eval');
  const dir = required(v, 'model', 'eval');
  const spec = required(v, 'data', 'eval');
  const steps = num(v, 'steps', { int: true, min: 1, max: 1000 });
  const solver = choice(v, 'solver', SOLVERS);
  const limit = num(v, 'limit', { int: true, min: 1 });
  const batchSize = num(v, 'batch-size', { int: true, min: 1 });
  const model = await loadPrgModel(dir, session(v));
  try {
    const ds = await loadDatasetFor(spec, model.manifest, {
      limit,
      allowResize: flag(v, 'resize'),
    });
    const r = await evaluateModel(model, ds, { steps, solver, batchSize });
    const s = model.manifest.solver;
    const rec = {
      model: model.id,
      data: spec,
      accuracy: r.accuracy,
      n: r.n,
      correct: r.correct,
      nll: r.nll,
      solver: solver ?? s.name,
      steps: steps ?? s.steps,
      tStar: s.tStar,
      perClassAccuracy: r.perClassAccuracy,
      seconds: r.seconds,
    };
    if (flag(v, 'record')) {
      // Only a full-settings measurement describes the shipped model; say exactly how it was made.
      const key = `accuracy:${spec}${limit ? `:limit${limit}` : ''}`;
      await updateManifest(dir, (m) => ({
        ...m,
        metrics: {
          ...m.metrics,
          [key]: {
            value: r.accuracy,
            command: `npx prg eval ${argv.join(' ')}`,
            data: spec,
            n: r.n,
            measuredAt: new Date().toISOString(),
            machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
          },
        },
      }));
    }
    if (flag(v, 'json')) process.stdout.write(JSON.stringify(rec) + '\n');
    else
      process.stdout.write(
        `${model.id} on ${spec}: accuracy ${(100 * r.accuracy).toFixed(2)}% ` +
          `(${r.correct}/${r.n}), nll ${r.nll.toFixed(4)}, ${r.seconds.toFixed(1)} s\n`,
      );
    return 0;
  } finally {
    await model.release();
  }
}

export { npy };

const FEATURES_OPTIONS: OptionSpec = {
  ...COMMON,
  model: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  t: { type: 'string' },
  pool: { type: 'string' },
  steps: { type: 'string' },
  solver: { type: 'string' },
  limit: { type: 'string' },
  'batch-size': { type: 'string' },
  resize: { type: 'boolean' },
};

async function featuresCommand(argv: string[]): Promise<number> {
  const v = parse(argv, FEATURES_OPTIONS, 'features');
  if (flag(v, 'help')) return help('features');
  const dir = required(v, 'model', 'features');
  const spec = required(v, 'data', 'features');
  const out = required(v, 'out', 'features');
  const opts = {
    t: num(v, 't', { min: 0, max: 1, exclusiveMin: true }),
    pool: pool(v, 'pool'),
    steps: num(v, 'steps', { int: true, min: 1, max: 1000 }),
    solver: choice(v, 'solver', SOLVERS),
  };
  const limit = num(v, 'limit', { int: true, min: 1 });
  const bs = num(v, 'batch-size', { int: true, min: 1 }) ?? 64;
  const model = await loadPrgModel(dir, session(v));
  try {
    const ds = await loadDatasetFor(spec, model.manifest, {
      limit,
      allowResize: flag(v, 'resize'),
    });
    const map = labelMap(ds, model.manifest.classes);
    const d = ds.shape[0] * ds.shape[1] * ds.shape[2];
    let feats: Float32Array | null = null;
    let D = 0;
    for (let s = 0; s < ds.n; s += bs) {
      const n = Math.min(bs, ds.n - s);
      const x = new Float32Array(n * d);
      const px = ds.images.subarray(s * d, (s + n) * d);
      for (let i = 0; i < x.length; i++) x[i] = px[i] / 127.5 - 1;
      const f = await model.features({ data: x, n }, opts);
      D = f.data.length / n;
      feats ??= new Float32Array(ds.n * D);
      feats.set(f.data, s * D);
    }
    const labels = Int32Array.from(ds.labels, (l) => map[l]);
    await writeFileAtomic(out, npy(feats ?? new Float32Array(0), [ds.n, D]));
    const labelsOut = out.replace(/\.npy$/, '') + '.labels.npy';
    await writeFileAtomic(labelsOut, npy(labels, [ds.n]));
    process.stdout.write(
      JSON.stringify({ features: out, labels: labelsOut, n: ds.n, dim: D, ...opts }) + '\n',
    );
    return 0;
  } finally {
    await model.release();
  }
}

function help(cmd?: string): number {
  const all: Record<string, string> = {
    ...HELP,
    ...OOD_HELP,
    'ood-bench': OOD_BENCH_HELP,
    import: IMPORT_HELP.import,
    recipe: RECIPE_HELP,
    ...GENERATION_HELP,
    report: REPORT_HELP,
  };
  if (cmd && all[cmd]) process.stdout.write(all[cmd] + '\n');
  else
    process.stdout.write(
      'usage: prg <pretrain|finetune|eval|features|sample|noise-stats|analyze|report|ood-fit|ood-eval|ood-bench|import|recipe> [options]   (prg <command> --help)\n',
    );
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'pretrain':
        return await pretrainCommand(rest);
      case 'finetune':
        return await finetuneCommand(rest);
      case 'eval':
        return await evalCommand(rest);
      case 'features':
        return await featuresCommand(rest);
      case 'ood-eval':
        return await oodEvalCommand(rest);
      case 'ood-fit':
        return await oodFitCommand(rest);
      case 'ood-bench':
        return await oodBenchCommand(rest);
      case 'import':
        return await importCommand(rest);
      case 'recipe':
        return await recipeCommand(rest);
      case 'sample':
        return await sampleCommand(rest);
      case 'noise-stats':
        return await noiseStatsCommand(rest);
      case 'analyze':
        return await analyzeCommand(rest);
      case 'report':
        return await reportCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return help(rest[0]);
      default:
        throw new UsageError(
          `unknown command ${cmd} (use pretrain, finetune, eval, features, sample, noise-stats, analyze, report, ood-fit, ood-eval, ood-bench, import, recipe)`,
        );
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    process.stderr.write(`prg ${cmd}: ${(e as Error).message}\n`);
    if (process.env.PRG_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

/** Run when executed directly or through bin/prg.js (which only requires this file). */
const entry = require.main?.filename ?? '';
if (require.main === module || /bin[\\/]prg(\.js)?$/.test(entry)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`prg: ${(e as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
