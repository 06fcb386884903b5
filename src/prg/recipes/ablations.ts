/**
 * Ablation recipes (issue 16; paper §4.3.2, §4.3.3, §4.5 and App. C): each asks one question of
 * PRG on MNIST or Fashion-MNIST, as a list of variants that differ from one reference PRG setting
 * in one thing, each trained and tested with several seeds under one small, stated budget.
 *
 * Reference (the shipped recipes' setting, definitions.ts): PRG-ICFM on PRG-UNet-XS, fine-tuned
 * through K = 3 Euler steps to t* = 0.5 with λ = 1 and label smoothing 0.1.
 *
 * A train variant pretrains (or, `pretrained: false`, starts the same net from random weights),
 * fine-tunes one run per learning-rate candidate, keeps the one with the best accuracy on a
 * validation split carved from the training images, and measures it on the test images. An eval
 * variant trains nothing: it measures a train variant's chosen model with another solver or
 * number of steps (paper §4.3.3 Tab. 1, App. C.2).
 *
 * Budget (one per dataset, the same for every variant): BUDGET below. Units of work (a pretrain,
 * a fine-tuning candidate, a test evaluation) are shared across variants and recipes whenever
 * their settings are identical (ablate.ts), so the reference variant is trained once per seed
 * however many recipes list it.
 */
import type { InterpolantName, SolverName } from '../manifest';
import type { FineTuneHyperparameters } from '../training/hyperparameters';
import {
  PRG_FINETUNE,
  PRG_PRETRAIN,
  SMOKE,
  type FineTuneCandidate,
  type FineTuneSettings,
  type PretrainSettings,
} from './definitions';

export interface TrainVariant {
  kind: 'train';
  name: string;
  label: string;
  interpolant: InterpolantName;
  /**
   * false: the velocity net starts from random weights (paper §4.5.1, "w/o pre-training"); the
   * pretrained flow of the same interpolant and seed then only supplies the architecture.
   */
  pretrained: boolean;
  /** Fine-tuning fields that differ from the recipe's (the reference's) hyperparameters. */
  finetune: FineTuneHyperparameters;
}

export interface EvalVariant {
  kind: 'eval';
  name: string;
  label: string;
  /** The train variant (same recipe) whose chosen model is measured. */
  of: string;
  solver: SolverName;
  /** Solver steps K (dopri5 is adaptive and ignores it). */
  steps: number;
}

export type AblationVariant = TrainVariant | EvalVariant;

export interface AblationRecipe {
  kind: 'ablation';
  name: string;
  version: number;
  description: string;
  /** The paper's question, as the report's caption. */
  question: string;
  /** The variant the others are compared with. */
  reference: string;
  data: {
    train: string;
    test: string;
    /** The first `limit` training images (the budget's subset); the validation split is carved from them. */
    limit: number;
    validation: number;
    /** The first `testLimit` test images. */
    testLimit: number;
    /** Seed of the validation carve (the same for every seed of the runs). */
    seed: number;
  };
  /** Training seeds: the pretrain, the new head, batch order and noise (mean ± std over them). */
  seeds: number[];
  pretrain: PretrainSettings;
  finetune: FineTuneSettings;
  variants: AblationVariant[];
}

/**
 * The budget of every ablation run (per dataset, variant and seed). Sized so that a variant × seed
 * (two candidates of 100 steps at batch 64, then 2 000 test images) takes about 5-10 minutes on
 * an idle 2-core machine, and a pretrain (300 steps at batch 64, shared by every variant of its
 * flow and seed) about as long; docs/training.md has the measured times.
 */
export const BUDGET = {
  trainImages: 6000,
  validation: 1000,
  testImages: 2000,
  pretrainSteps: 300,
  batchSize: 64,
  candidates: [
    { learningRate: 1e-3, steps: 100 },
    { learningRate: 3e-4, steps: 100 },
  ] as FineTuneCandidate[],
  seeds: [0, 1],
};

const REFERENCE: TrainVariant = {
  kind: 'train',
  name: 'prg',
  label: 'PRG-ICFM (full fine-tuning, K = 3, t* = 0.5, λ = 1)',
  interpolant: 'icfm',
  pretrained: true,
  finetune: {},
};

const train = (
  name: string,
  label: string,
  o: Partial<Omit<TrainVariant, 'kind' | 'name' | 'label'>> = {},
): TrainVariant => ({ ...REFERENCE, name, label, ...o, finetune: { ...o.finetune } });

/** The questions (paper section in brackets); each becomes ablate-<group>-<dataset>. */
const GROUPS: Record<string, { question: string; variants: AblationVariant[] }> = {
  flows: {
    question: 'Does the probability path matter: ICFM vs OT-CFM vs GVP (paper §4.5.3, Tab. 10)?',
    variants: [
      train('prg', 'ICFM'),
      train('otcfm', 'OT-CFM', { interpolant: 'otcfm' }),
      train('gvp', 'GVP', { interpolant: 'gvp' }),
    ],
  },
  finetune: {
    question:
      'Full fine-tuning vs a frozen flow (head only) vs no pretraining (paper §4.3.2 Fig. 6, §4.5.1 Tab. 8)?',
    variants: [
      train('prg', 'full fine-tuning (flow + head)'),
      // The same gradient as direct mode (gradients.spec.ts); adjoint skips the walk back when frozen.
      train('frozen', 'frozen flow, head only', {
        finetune: { freezeFlow: true, lambdaFlow: 0, gradientMode: 'adjoint' },
      }),
      train('scratch', 'no pretraining (same net from random weights, same fine-tuning)', {
        pretrained: false,
      }),
    ],
  },
  tstar: {
    question: 'Which feature time t* (paper §4.3.2, App. C.4)?',
    variants: [0.25, 0.5, 0.75, 1].map((t) =>
      t === 0.5
        ? train('prg', 't* = 0.5')
        : train(`tstar-${t}`, `t* = ${t}`, { finetune: { tStar: t } }),
    ),
  },
  lambda: {
    question: 'Does the flow-matching term of eq. 3 help: λ = 0 vs λ = 1 (paper §4.5.2, Tab. 9)?',
    variants: [train('lambda-0', 'λ = 0', { finetune: { lambdaFlow: 0 } }), train('prg', 'λ = 1')],
  },
  solver: {
    question:
      'Are the features stable across solver steps and solvers (paper §4.3.3 Tab. 1, App. C.2)? One trained model per seed, measured at each setting.',
    variants: [
      train('prg', 'trained with Euler, K = 3'),
      ...[1, 2, 3, 5, 10, 20].map((k): EvalVariant => ({
        kind: 'eval',
        name: `euler-${k}`,
        label: `Euler, K = ${k}`,
        of: 'prg',
        solver: 'euler',
        steps: k,
      })),
      ...(['midpoint', 'rk4'] as const).map((s): EvalVariant => ({
        kind: 'eval',
        name: `${s}-3`,
        label: `${s}, K = 3`,
        of: 'prg',
        solver: s,
        steps: 3,
      })),
      {
        kind: 'eval',
        name: 'dopri5',
        label: 'dopri5 (adaptive, atol = rtol = 1e-5)',
        of: 'prg',
        solver: 'dopri5',
        steps: 3,
      },
    ],
  },
  supervised: {
    question:
      'Where does PRG stand against a plain classifier of the same size and budget (the same U-Net and head trained by cross-entropy only)?',
    variants: [
      train('prg', 'PRG (pretrained flow, fine-tuned through the solver)'),
      train('scratch', 'PRG without pretraining (same net from random weights)', {
        pretrained: false,
      }),
      // One evaluation of the net, x + v_θ(x, 0) (a residual block; K = 1 Euler to t* = 1), random
      // weights, no flow-matching term: a supervised classifier with the same net, head, optimiser,
      // steps and learning-rate candidates. Its step costs one net pass instead of three.
      train('supervised', 'supervised: x + U-Net(x) → same head, cross-entropy only', {
        pretrained: false,
        finetune: { steps: 1, tStar: 1, lambdaFlow: 0, solver: 'euler' },
      }),
    ],
  },
};

const DATASETS = {
  mnist: { train: 'mnist:train', test: 'mnist:test', title: 'MNIST' },
  'fashion-mnist': {
    train: 'fashion-mnist:train',
    test: 'fashion-mnist:test',
    title: 'Fashion-MNIST',
  },
} as const;

function ablation(group: string, dataset: keyof typeof DATASETS): AblationRecipe {
  const g = GROUPS[group];
  const d = DATASETS[dataset];
  const b = BUDGET;
  return {
    kind: 'ablation',
    name: `ablate-${group}-${dataset}`,
    version: 1,
    description:
      `${g.question.split('?')[0]}? on ${d.title}. Budget per seed: first ${b.trainImages} training ` +
      `images (${b.validation} carved for validation), pretrain ${b.pretrainSteps} steps of ` +
      `${b.batchSize}, fine-tune ${b.candidates.length} learning rates × ${b.candidates[0].steps} ` +
      `steps of ${b.batchSize} (best on validation), test on the first ${b.testImages} test images; ` +
      `seeds ${b.seeds.join(', ')}`,
    question: g.question,
    reference: 'prg',
    data: {
      train: d.train,
      test: d.test,
      limit: b.trainImages,
      validation: b.validation,
      testLimit: b.testImages,
      seed: 0,
    },
    seeds: [...b.seeds],
    pretrain: { ...PRG_PRETRAIN, batchSize: b.batchSize, steps: b.pretrainSteps },
    finetune: {
      // No seed here: each variant × seed unit sets its own.
      hyperparameters: { ...PRG_FINETUNE, batchSize: b.batchSize },
      candidates: b.candidates,
      checkpointEvery: 20,
    },
    variants: g.variants,
  };
}

export const ABLATIONS: Record<string, AblationRecipe> = Object.fromEntries(
  Object.keys(GROUPS).flatMap((g) =>
    (Object.keys(DATASETS) as (keyof typeof DATASETS)[]).map((d) => {
      const r = ablation(g, d);
      return [r.name, r];
    }),
  ),
);

/**
 * The same ablation shrunk to seconds (CI): 160 images, the test fixtures' 8-channel U-Net, four
 * steps per stage, both seeds and every variant. Its numbers mean nothing.
 */
export function smokeAblation(r: AblationRecipe): AblationRecipe {
  const { candidates, checkpointEvery, ...hyper } = SMOKE.finetune;
  return {
    ...r,
    name: `${r.name}-smoke`,
    data: { ...r.data, ...SMOKE.data },
    pretrain: { ...r.pretrain, ...SMOKE.pretrain },
    finetune: {
      hyperparameters: { ...r.finetune.hyperparameters, ...hyper },
      candidates,
      checkpointEvery,
    },
  };
}

export function ablationNamed(name: string, smoke = false): AblationRecipe | undefined {
  const r = ABLATIONS[name];
  return r && smoke ? smokeAblation(r) : r;
}
