/**
 * Fine-tune hyperparameters (paper §3.2 eq. 3, App. B.1 Tab. 2, App. C.1), each defined once here:
 * its kind, its valid range and its default. Everything else derives from this table: the
 * FineTuneHyperparameters type, the server's API class and its validation, the `prg finetune`
 * switches, and the run's resolution of defaults (resolveHyperparameters).
 */
import { isFixedSolver } from '../features';
import { FIXED_SOLVER_NAMES, FixedSolverName, ModelManifest } from '../manifest';

export const GRADIENT_MODES = ['direct', 'adjoint'] as const;
export type GradientMode = (typeof GRADIENT_MODES)[number];

/** Deployment limits that bound some fields further (the server's MAX_EPOCHS, MAX_STEPS). */
export interface HyperparameterLimits {
  maxEpochs: number;
  maxSteps: number;
}

interface Described {
  description: string;
}
export interface IntSpec extends Described {
  kind: 'int';
  min: number;
  max: number;
  /** A deployment limit that may lower `max`. */
  bound?: keyof HyperparameterLimits;
  default?: number;
}
export interface NumberSpec extends Described {
  kind: 'number';
  min: number;
  max: number;
  openMin?: boolean;
  openMax?: boolean;
  default?: number;
}
export interface ChoiceSpec extends Described {
  kind: 'choice';
  values: readonly string[];
  default?: string;
}
export interface BooleanSpec extends Described {
  kind: 'boolean';
  default: boolean;
}
export type HyperparameterSpec = IntSpec | NumberSpec | ChoiceSpec | BooleanSpec;

/** Fields without a default take the base model's value (steps, tStar, solver). */
export const HYPERPARAMETERS = {
  epochs: {
    kind: 'int',
    min: 1,
    max: 1_000_000,
    bound: 'maxEpochs',
    default: 10,
    description: 'passes over the training set',
  },
  batchSize: {
    kind: 'int',
    min: 1,
    max: 4096,
    default: 128,
    description: 'images per optimizer step',
  },
  learningRate: {
    kind: 'number',
    min: 0,
    max: 1,
    openMin: true,
    // The paper's effective CIFAR-10 rate: LR base 1.25e-4 × (256 × 4 GPUs) / 512 (Tab. 2, eq. 1).
    default: 2.5e-4,
    description: 'AdamW peak learning rate (cosine decay to lr/100 after a warm-up from lr/1000)',
  },
  weightDecay: { kind: 'number', min: 0, max: 1, default: 0.05, description: 'AdamW weight decay' },
  warmupEpochs: {
    kind: 'int',
    min: 0,
    max: 1_000_000,
    bound: 'maxEpochs',
    default: 1,
    description: 'linear learning-rate warm-up, at most `epochs`',
  },
  labelSmoothing: {
    kind: 'number',
    min: 0,
    max: 1,
    openMax: true,
    default: 0.1,
    description: 'label smoothing of the cross-entropy (App. C.1)',
  },
  lambdaFlow: {
    kind: 'number',
    min: 0,
    max: 1000,
    default: 1,
    description: 'weight λ of the flow-matching loss (eq. 3); 0 allowed',
  },
  steps: {
    kind: 'int',
    min: 1,
    max: 10_000,
    bound: 'maxSteps',
    description: "solver steps K (default: the base model's)",
  },
  tStar: {
    kind: 'number',
    min: 0,
    max: 1,
    openMin: true,
    description: "feature time t* (default: the base model's)",
  },
  solver: {
    kind: 'choice',
    values: FIXED_SOLVER_NAMES,
    description:
      "fixed-step solver to differentiate through (default: the base model's, euler if it is adaptive)",
  },
  gradientMode: {
    kind: 'choice',
    values: GRADIENT_MODES,
    // adjoint: direct mode at batch 128, K = 10 on PRG-UNet-XS passed 17 GB resident (bench/train.ts).
    default: 'adjoint',
    description:
      'gradients through the solver: direct (unrolled) or adjoint (discrete adjoint, less memory)',
  },
  freezeFlow: { kind: 'boolean', default: false, description: 'train the head only (λ becomes 0)' },
  seed: {
    kind: 'int',
    min: 0,
    max: 2 ** 31 - 1,
    default: 0,
    description: 'shuffling, new head and flow-matching noise',
  },
  allowResize: {
    kind: 'boolean',
    default: false,
    description: "resize/convert dataset images to the model's input shape",
  },
} as const satisfies Record<string, HyperparameterSpec>;

export type HyperparameterName = keyof typeof HYPERPARAMETERS;
export const HYPERPARAMETER_NAMES = Object.keys(HYPERPARAMETERS) as HyperparameterName[];

type ValueOf<S> = S extends { kind: 'int' | 'number' }
  ? number
  : S extends { kind: 'choice'; values: readonly (infer T)[] }
    ? T
    : boolean;

/** What a job or `prg finetune` may set; absent fields take their defaults. */
export type FineTuneHyperparameters = {
  -readonly [K in HyperparameterName]?: ValueOf<(typeof HYPERPARAMETERS)[K]>;
};

/** `spec.max`, lowered by the deployment limit it is bound to (when limits are given). */
export function maxOf(spec: HyperparameterSpec, limits?: HyperparameterLimits): number {
  if (spec.kind !== 'int' && spec.kind !== 'number') return NaN;
  const bound = spec.kind === 'int' && spec.bound && limits ? limits[spec.bound] : Infinity;
  return Math.min(spec.max, bound);
}

/** Whether `v` is a valid value of `spec` (within `limits` when given). */
export function accepts(
  spec: HyperparameterSpec,
  v: unknown,
  limits?: HyperparameterLimits,
): boolean {
  switch (spec.kind) {
    case 'boolean':
      return typeof v === 'boolean';
    case 'choice':
      return typeof v === 'string' && spec.values.includes(v);
    case 'int':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return false;
      if (spec.kind === 'int' && !Number.isInteger(v)) return false;
      const max = maxOf(spec, limits);
      const openMin = spec.kind === 'number' && spec.openMin;
      const openMax = spec.kind === 'number' && spec.openMax;
      return (openMin ? v > spec.min : v >= spec.min) && (openMax ? v < max : v <= max);
    }
  }
}

/** What a valid value looks like: "an integer in [1, 100]", "one of direct, adjoint", … */
export function expectation(spec: HyperparameterSpec, limits?: HyperparameterLimits): string {
  switch (spec.kind) {
    case 'boolean':
      return 'true or false';
    case 'choice':
      return `one of ${spec.values.join(', ')}`;
    case 'int':
      return `an integer in [${spec.min}, ${maxOf(spec, limits)}]`;
    case 'number':
      return `a number in ${spec.openMin ? '(' : '['}${spec.min}, ${spec.max}${spec.openMax ? ')' : ']'}`;
  }
}

/** The problem with `name` = `v`, or null when valid. */
export function hyperparameterProblem(
  name: HyperparameterName,
  v: unknown,
  limits?: HyperparameterLimits,
): string | null {
  const spec: HyperparameterSpec = HYPERPARAMETERS[name];
  return accepts(spec, v, limits)
    ? null
    : `hyperparameters.${name}=${JSON.stringify(v)}: expected ${expectation(spec, limits)}`;
}

/** Rules across fields: none when a field is invalid on its own. */
export function crossFieldProblems(h: FineTuneHyperparameters): string[] {
  return h.warmupEpochs !== undefined && h.epochs !== undefined && h.warmupEpochs > h.epochs
    ? [`hyperparameters.warmupEpochs=${h.warmupEpochs}: more than epochs=${h.epochs}`]
    : [];
}

/** Every hyperparameter with its default or the base model's value: what a run uses. */
export interface ResolvedHyperparameters {
  epochs: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  warmupEpochs: number;
  labelSmoothing: number;
  /** λ as given (provenance); the loss uses `lambda`. */
  lambdaFlow: number;
  /** The flow-matching weight the loss uses: 0 when the flow is frozen. */
  lambda: number;
  steps: number;
  tStar: number;
  solver: FixedSolverName;
  gradientMode: GradientMode;
  freezeFlow: boolean;
  seed: number;
  allowResize: boolean;
}

/**
 * `hp` with defaults filled in (steps, tStar and solver from the base model: its solver when it is
 * a fixed-step one, else euler), each checked against the table; throws naming every problem.
 */
export function resolveHyperparameters(
  hp: FineTuneHyperparameters,
  base: ModelManifest,
): ResolvedHyperparameters {
  const d = HYPERPARAMETERS;
  const r = {
    epochs: hp.epochs ?? d.epochs.default,
    batchSize: hp.batchSize ?? d.batchSize.default,
    learningRate: hp.learningRate ?? d.learningRate.default,
    weightDecay: hp.weightDecay ?? d.weightDecay.default,
    warmupEpochs: hp.warmupEpochs ?? d.warmupEpochs.default,
    labelSmoothing: hp.labelSmoothing ?? d.labelSmoothing.default,
    lambdaFlow: hp.lambdaFlow ?? d.lambdaFlow.default,
    steps: hp.steps ?? base.solver.steps,
    tStar: hp.tStar ?? base.solver.tStar,
    solver: hp.solver ?? (isFixedSolver(base.solver.name) ? base.solver.name : 'euler'),
    gradientMode: hp.gradientMode ?? d.gradientMode.default,
    freezeFlow: hp.freezeFlow ?? d.freezeFlow.default,
    seed: hp.seed ?? d.seed.default,
    allowResize: hp.allowResize ?? d.allowResize.default,
  };
  const problems = HYPERPARAMETER_NAMES.map((k) => hyperparameterProblem(k, r[k])).filter(
    (p): p is string => p !== null,
  );
  if (problems.length) throw new Error(problems.join('; '));
  return { ...r, lambda: r.freezeFlow ? 0 : r.lambdaFlow };
}

/**
 * "auto" (issue 16): what a fine-tune job gets for the fields it leaves out, chosen from the size
 * n of its training set, as hosted fine-tuning services do. A job trains in two phases:
 *
 * 1. head: the flow frozen (λ = 0, no gradient through the solver, so a step costs one forward
 *    solve), a new head learns on the pretrained features at a high learning rate;
 * 2. flow: flow and head together (eq. 3) at a ten times lower rate, starting from phase 1.
 *
 * On a small upload a head on pretrained features does most of the work; training the whole net
 * from a random head at once is what gave 84 % in the example (≈ 10 steps at lr 2.5e-4).
 * The budgets below are in images passed through the solver, so a phase's time grows with n only
 * until its epoch bound is reached; docs/training.md has the measured accuracies and times.
 */
export interface AutoPhaseRule {
  /** Images passed through the solver in the phase: epochs ≈ images / n. */
  images: number;
  minEpochs: number;
  maxEpochs: number;
  learningRate: number;
}
export interface AutoRule {
  /** batch ≈ n / imagesPerStep, rounded to a power of two in [minBatch, maxBatch]. */
  imagesPerStep: number;
  minBatch: number;
  maxBatch: number;
  head: AutoPhaseRule;
  flow: AutoPhaseRule;
}

export const AUTO_RULE: Readonly<AutoRule> = {
  imagesPerStep: 20,
  minBatch: 16,
  maxBatch: 128,
  head: { images: 4000, minEpochs: 1, maxEpochs: 20, learningRate: 1e-3 },
  flow: { images: 2000, minEpochs: 1, maxEpochs: 10, learningRate: 1e-4 },
};

export type AutoPhaseName = 'head' | 'flow';
export interface AutoPhase {
  phase: AutoPhaseName;
  hyperparameters: FineTuneHyperparameters;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** The auto batch size for n training images (AUTO_RULE). */
export function autoBatchSize(n: number, r: AutoRule = AUTO_RULE): number {
  const p = 2 ** Math.round(Math.log2(Math.max(1, n / r.imagesPerStep)));
  // Never more than the data holds (a batch is dropped when incomplete).
  return Math.min(clamp(p, r.minBatch, r.maxBatch), Math.max(1, 2 ** Math.floor(Math.log2(n))));
}

/** Epochs that pass about `images` images through the solver, within the phase's bounds. */
function autoEpochs(n: number, rule: AutoPhaseRule) {
  return clamp(Math.round(rule.images / Math.max(1, n)), rule.minEpochs, rule.maxEpochs);
}

/**
 * The phases a job with `given` fields runs on n training images. Given fields win: batchSize
 * in both phases; epochs, learningRate, warmupEpochs, lambdaFlow and gradientMode in the flow
 * phase (the head phase is always automatic). `freezeFlow: true` runs the head phase only,
 * `freezeFlow: false` the flow phase only (the pre-"auto" behaviour with auto sizes).
 */
export function autoPhases(
  n: number,
  given: FineTuneHyperparameters,
  r: AutoRule = AUTO_RULE,
): AutoPhase[] {
  const batchSize = given.batchSize ?? autoBatchSize(n, r);
  const head: AutoPhase = {
    phase: 'head',
    hyperparameters: {
      ...given,
      batchSize,
      epochs: given.freezeFlow ? (given.epochs ?? autoEpochs(n, r.head)) : autoEpochs(n, r.head),
      learningRate: given.freezeFlow
        ? (given.learningRate ?? r.head.learningRate)
        : r.head.learningRate,
      warmupEpochs: given.freezeFlow ? (given.warmupEpochs ?? 0) : 0,
      freezeFlow: true,
      lambdaFlow: 0,
      // Forward solve, head backward only (finetune.ts skips the walk back when frozen).
      gradientMode: 'adjoint',
    },
  };
  const flow: AutoPhase = {
    phase: 'flow',
    hyperparameters: {
      ...given,
      batchSize,
      epochs: given.epochs ?? autoEpochs(n, r.flow),
      learningRate: given.learningRate ?? r.flow.learningRate,
      warmupEpochs: given.warmupEpochs ?? 0,
      freezeFlow: false,
    },
  };
  if (given.freezeFlow === true) return [head];
  if (given.freezeFlow === false) return [flow];
  return [head, flow];
}
