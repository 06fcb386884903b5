/**
 * The paper's numbers the report sets ours beside (/work/shared/paper, "Pretrained Reversible
 * Generation as Unsupervised Visual Representation Learning"). Only numbers legible in our text
 * copy of the paper are here; where a table's cells are empty in that copy the report says so
 * instead of guessing.
 */

export const PAPER_SETTING =
  'CIFAR-10 (32×32 RGB), Tiny-ImageNet and ImageNet (64×64); U-Nets of tens of millions of ' +
  'parameters; pretraining 1000–2000 epochs on 8×A100 (App. B.1, Tab. 1), fine-tuning 200 epochs ' +
  'on 4–32 A100s (App. B.1, Tab. 2), Euler with T span 20–64';

export const OUR_SETTING =
  'MNIST and Fashion-MNIST (28×28 grey); PRG-UNet-XS (0.62 M parameters) with a 256-unit tanh ' +
  'MLP head; pretraining and fine-tuning in minutes to hours on a shared 2-core CPU (recipes in ' +
  'src/prg/recipes, budgets in each results file)';

/** §4.4.1: PRG's best accuracy per dataset. */
export const PAPER_MAIN = [
  { dataset: 'CIFAR-10', accuracy: 97.59, where: '§4.4.1' },
  { dataset: 'Tiny-ImageNet', accuracy: 71.12, where: '§4.4.1' },
  { dataset: 'ImageNet', accuracy: 78.1, where: '§4.4.1' },
];

/** §4.3.3 Tab. 1: accuracy (%) by inference steps, one trained model per flow (CIFAR-10). */
export const PAPER_STEPS = {
  where: '§4.3.3, Tab. 1',
  steps: [20, 100, 500, 800, 1000],
  rows: [
    { flow: 'PRG-GVP', accuracy: [97.25, 97.28, 97.3, 97.31, 97.31] },
    { flow: 'PRG-ICFM', accuracy: [97.32, 97.33, 97.34, 97.34, 97.34] },
    { flow: 'PRG-OTCFM', accuracy: [97.42, 97.43, 97.43, 97.44, 97.44] },
  ],
};

/** §4.3.2: end-to-end fine-tuning minus frozen flow (head only), accuracy points. */
export const PAPER_FROZEN_GAP = [
  { dataset: 'CIFAR-10', gap: 47.1, where: '§4.3.2, Fig. 6' },
  { dataset: 'Tiny-ImageNet', gap: 58.04, where: '§4.3.2, Fig. 6' },
];

/** Claims whose tables have no legible numbers in our copy; the report quotes the claim. */
export const PAPER_CLAIMS: Record<string, { where: string; claim: string }> = {
  solvers: {
    where: 'App. C.2, Tab. 6–7',
    claim: 'Euler, Midpoint, RK4 and Dopri5 show no significant performance differences.',
  },
  tStar: {
    where: '§4.3.2, Fig. 6; §4.3.3 Tab. 2',
    claim:
      'on CIFAR-10, starting fine-tuning from later points of the trajectory gives progressively better accuracy; features within ±20 % of the training point still perform well.',
  },
  lambda: {
    where: '§4.5.2, Tab. 9',
    claim:
      'λ in eq. 3 balances the flow-matching bound and the task (values not legible in our copy).',
  },
  flows: {
    where: '§4.5.3, Tab. 10',
    claim:
      'GVP, ICFM and OTCFM reach comparable accuracy; straighter paths need fewer pretraining steps.',
  },
  pretraining: {
    where: '§4.5.1, Tab. 8; §4.3.1',
    claim: 'PRG without pretraining is suboptimal; more pretraining gives better fine-tuning.',
  },
  supervised: {
    where: '§4.4.1',
    claim:
      'PRG surpasses supervised classifiers such as WideResNet-28 (other, larger nets than ours) but trails transformer-based supervised nets; the paper trains no supervised baseline of its own net.',
  },
  generation: {
    where: '§3.2',
    claim:
      'pretraining transforms the data distribution into a Gaussian while preserving information (the reverse process ends at N(0, I)); the paper reports no sample-quality numbers.',
  },
};

/**
 * Issue 16's test-accuracy targets for the recipes (the shipped models' accuracy), not the
 * paper's: keyed by recipe name.
 */
export const RECIPE_TARGETS: Record<string, number> = { mnist: 0.993, 'fashion-mnist': 0.93 };
