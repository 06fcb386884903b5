/** `prg finetune`: src/prg/training/finetune-job.ts runFineTune with progress, log and Ctrl-C. */
import { runFineTune } from '../prg/training/finetune-job';
import { AugmentOptions } from '../prg/data';
import {
  FineTuneHyperparameters,
  HYPERPARAMETER_NAMES,
  HYPERPARAMETERS,
  HyperparameterName,
  HyperparameterSpec,
} from '../prg/training/hyperparameters';
import {
  OptionSpec,
  UsageError,
  Values,
  choice,
  flag,
  num,
  parse,
  pool,
  required,
  str,
} from './args';
import { COMMON, session } from './common';
import { runTrainingCommand } from './training-run';

export const FINETUNE_OPTIONS: OptionSpec = {
  ...COMMON,
  model: { type: 'string' },
  data: { type: 'string' },
  'eval-data': { type: 'string' },
  out: { type: 'string' },
  overwrite: { type: 'boolean' },
  'checkpoint-dir': { type: 'string' },
  resume: { type: 'boolean' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  'weight-decay': { type: 'string' },
  'warmup-epochs': { type: 'string' },
  'label-smoothing': { type: 'string' },
  'lambda-flow': { type: 'string' },
  steps: { type: 'string' },
  't-star': { type: 'string' },
  solver: { type: 'string' },
  'gradient-mode': { type: 'string' },
  'freeze-flow': { type: 'boolean' },
  'no-pretrain': { type: 'boolean' },
  pool: { type: 'string' },
  hidden: { type: 'string' },
  'grad-clip': { type: 'string' },
  hflip: { type: 'string' },
  'crop-padding': { type: 'string' },
  seed: { type: 'string' },
  limit: { type: 'string' },
  'eval-limit': { type: 'string' },
  'max-steps': { type: 'string' },
  'checkpoint-every': { type: 'string' },
  'checkpoint-minutes': { type: 'string' },
  resize: { type: 'boolean' },
  name: { type: 'string' },
  'model-version': { type: 'string' },
  log: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
};

export const FINETUNE_HELP = `prg finetune --model BASE_DIR --data SPEC --out DIR [options]
  Fine-tuning through the reverse ODE (paper eq. 3): label-smoothing CE + λ·flow matching.
  --eval-data SPEC (held-out accuracy per epoch, recorded in the manifest) --eval-limit N
  --checkpoint-dir DIR (default DIR.ckpt) --resume --overwrite
  --epochs N (10) --batch-size N (128) --lr X (2.5e-4) --weight-decay X (0.05)
  --warmup-epochs X (1) --label-smoothing X (0.1) --lambda-flow X (1; 0 allowed)
  --steps K --t-star T --solver ${HYPERPARAMETERS.solver.values.join('|')} (default: the base model's)
  --gradient-mode ${HYPERPARAMETERS.gradientMode.values.join('|')} (adjoint)  --freeze-flow  --no-pretrain  --pool none|N --hidden N
  --hflip P (flip probability, 0) --crop-padding N (random crop after padding, 0)
  --grad-clip X --seed N --limit N --max-steps N --checkpoint-every N --checkpoint-minutes M (10) --resize
  --name NAME --model-version V --log FILE.jsonl --quiet --json --threads N --device cpu|cuda`;

export async function finetuneCommand(argv: string[]): Promise<number> {
  const v = parse(argv, FINETUNE_OPTIONS, 'finetune');
  if (flag(v, 'help')) {
    process.stdout.write(FINETUNE_HELP + '\n');
    return 0;
  }
  const out = required(v, 'out', 'finetune');
  const featurePool = pool(v, 'pool');
  const opts = {
    baseModelDir: required(v, 'model', 'finetune'),
    dataset: required(v, 'data', 'finetune'),
    evalDataset: str(v, 'eval-data'),
    outputDir: out,
    overwrite: flag(v, 'overwrite'),
    checkpointDir: str(v, 'checkpoint-dir') ?? `${out}.ckpt`,
    resume: flag(v, 'resume'),
    hyperparameters: hyperparameters(v),
    noPretrain: flag(v, 'no-pretrain'),
    featurePool,
    hidden: num(v, 'hidden', { int: true, min: 1 }),
    gradClip: num(v, 'grad-clip', { min: 0 }),
    augment: augmentOptions(v),
    limit: num(v, 'limit', { int: true, min: 1 }),
    evalLimit: num(v, 'eval-limit', { int: true, min: 1 }),
    maxSteps: num(v, 'max-steps', { int: true, min: 1 }),
    checkpointEvery: num(v, 'checkpoint-every', { int: true, min: 1 }),
    checkpointMinutes: num(v, 'checkpoint-minutes', { min: 0, exclusiveMin: true }),
    name: str(v, 'name') ?? 'prg-finetuned',
    version: str(v, 'model-version') ?? '1.0.0',
    ...session(v),
  };
  return runTrainingCommand(
    'finetune',
    v,
    opts,
    (hooks) => runFineTune({ ...opts, ...hooks }),
    (res) => {
      const acc = res.metrics.evalAccuracy;
      return (
        `fine-tuned ${res.steps} steps (loss ${res.metrics.finalLoss?.toFixed(4)}` +
        `${acc !== undefined ? `, eval accuracy ${(100 * acc).toFixed(2)}%` : ''}) → ${res.modelDir}`
      );
    },
  );
}

/** The switch of each hyperparameter. */
const HYPERPARAMETER_FLAGS: Record<HyperparameterName, string> = {
  epochs: 'epochs',
  batchSize: 'batch-size',
  learningRate: 'lr',
  weightDecay: 'weight-decay',
  warmupEpochs: 'warmup-epochs',
  labelSmoothing: 'label-smoothing',
  lambdaFlow: 'lambda-flow',
  steps: 'steps',
  tStar: 't-star',
  solver: 'solver',
  gradientMode: 'gradient-mode',
  freezeFlow: 'freeze-flow',
  seed: 'seed',
  allowResize: 'resize',
};

/** The hyperparameter switches, each checked against its kind and range (hyperparameters.ts). */
function hyperparameters(v: Values): FineTuneHyperparameters {
  const hp: Record<string, unknown> = {};
  for (const k of HYPERPARAMETER_NAMES) {
    const name = HYPERPARAMETER_FLAGS[k];
    const spec: HyperparameterSpec = HYPERPARAMETERS[k];
    if (spec.kind === 'boolean') hp[k] = flag(v, name);
    else if (spec.kind === 'choice') hp[k] = choice(v, name, spec.values);
    else {
      const open = spec.kind === 'number' && spec.openMin;
      const n = num(v, name, {
        int: spec.kind === 'int',
        min: spec.min,
        max: spec.max,
        exclusiveMin: open,
      });
      if (n !== undefined && spec.kind === 'number' && spec.openMax && n >= spec.max)
        throw new UsageError(`--${name}=${str(v, name)}: must be < ${spec.max}`);
      hp[k] = n;
    }
  }
  return hp as FineTuneHyperparameters;
}

/** --hflip / --crop-padding as the loader's augmentation, or undefined when both are off. */
function augmentOptions(v: Values): AugmentOptions | undefined {
  const hflip = num(v, 'hflip', { min: 0, max: 1 }) ?? 0;
  const cropPadding = num(v, 'crop-padding', { int: true, min: 0, max: 64 }) ?? 0;
  return hflip > 0 || cropPadding > 0 ? { hflip, cropPadding } : undefined;
}
