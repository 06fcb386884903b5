/**
 * Running an ablation recipe (ablations.ts), seed by seed so that partial results compare every
 * variant: for each seed, each train variant's pretrain (one per interpolant and seed), its
 * fine-tuning candidates, the choice on the validation split and the test evaluation of the chosen
 * model; then each eval variant (the chosen model of a train variant under another solver or K).
 *
 *   <dir>/state.json     finished stages (unit, result, CPU and wall seconds, runs)
 *   <dir>/results.json   recipe.ts's results shape plus an `ablation` block (docs/training.md)
 *   <units>/…            the units of work, shared across variants and recipes (units.ts)
 *
 * As with recipes, a run directory with a state needs `resume`; a stop inside a unit checkpoints
 * it and the next run continues it. `units` defaults to `ablation-units` beside `dir`, so every
 * ablation recipe under runs/recipes/ shares one store.
 */
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { Device } from '../../engine/runtime/device';
import { ImageDataset, head, loadDataset } from '../data';
import { loadPrgModel } from '../inference';
import { commandLine, gitCommit } from '../model-dir/provenance';
import { EpochProgress, StepProgress, TrainingAborted } from '../training/common';
import { evaluateModel } from '../training/evaluate';
import { runFineTune } from '../training/finetune-job';
import { resolveHyperparameters } from '../training/hyperparameters';
import { pretrain } from '../training/pretrain';
import { readManifest } from '../model-dir/io';
import { AblationRecipe, EvalVariant, TrainVariant } from './ablations';
import {
  RESULTS_FILE,
  RecipeResults,
  StageEvent,
  StageRecord,
  StageUnit,
  carveValidation,
  chooseCandidate,
  machine,
} from './run';
import { openRunState, writeJson } from './run-state';
import { UNIT_CHECKPOINT_DIR, UnitStore, unitId } from './units';

export interface AblationStageRecord extends StageRecord {
  /** The unit (units.ts) this stage used. */
  unit: string;
  /** Done before this stage asked for it (another variant, recipe or run did the work). */
  reused: boolean;
}

interface AblationState {
  recipe: string;
  version: number;
  stages: Record<string, AblationStageRecord>;
}

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n − 1); null for one seed. */
  std: number | null;
  n: number;
}

export interface AblationSeedRun {
  seed: number;
  testAccuracy: number;
  /** Train variants: validation accuracy per candidate and the chosen one. */
  validationAccuracy?: number[];
  chosen?: number;
  /** CPU seconds of this variant and seed (candidates + test; the pretrain is in `pretrain`). */
  cpuSeconds: number;
}

export interface AblationVariantResult {
  name: string;
  label: string;
  kind: 'train' | 'eval';
  /** Train: interpolant, pretrained and the fine-tuning fields changed; eval: of, solver, steps. */
  settings: Record<string, unknown>;
  runs: AblationSeedRun[];
  /** Over the seeds measured so far (null before the first). */
  testAccuracy: MeanStd | null;
}

export interface AblationBlock {
  question: string;
  reference: string;
  train: string;
  test: string;
  /** What each number is measured on. */
  metric: string;
  seeds: number[];
  budget: {
    trainImages: number;
    validationImages: number;
    testImages: number;
    pretrainSteps: number;
    batchSize: number;
    candidates: { learningRate: number; steps: number }[];
    selection: string;
  };
  /** Pretrain CPU seconds per "<interpolant>/seed<s>". */
  pretrain: Record<string, { cpuSeconds: number; finalLoss: number | null }>;
  variants: AblationVariantResult[];
}

export type AblationResults = Omit<
  RecipeResults,
  'settings' | 'stages' | 'selection' | 'testAccuracy'
> & {
  settings: AblationRecipe;
  stages: Record<string, AblationStageRecord>;
  ablation: AblationBlock;
};

export interface RunAblationOptions {
  recipe: AblationRecipe;
  dir: string;
  /** The shared unit store (default: `ablation-units` beside dir). */
  unitsDir?: string;
  resume?: boolean;
  threads?: number;
  device?: Device;
  signal?: AbortSignal;
  onStage?: (e: StageEvent) => void;
  onStep?: (p: StepProgress) => void;
  onEpoch?: (p: EpochProgress) => void;
  command?: string;
  /** Already-loaded splits (tests): train is then the whole budget subset, test the test subset. */
  datasets?: { train?: ImageDataset; test?: ImageDataset };
}

export function meanStd(xs: number[]): MeanStd | null {
  if (!xs.length) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std =
    xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : null;
  return { mean, std, n: xs.length };
}

const stageName = {
  pretrain: (seed: number, interp: string) => `seed${seed}/pretrain-${interp}`,
  candidate: (seed: number, v: string, i: number) => `seed${seed}/${v}/candidate-${i}`,
  test: (seed: number, v: string) => `seed${seed}/${v}/test`,
};

/** Checks a recipe's variants: unique names, the reference present, eval variants of train ones. */
export function checkAblation(r: AblationRecipe): void {
  const names = r.variants.map((v) => v.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`${r.name}: variant ${dup} listed twice`);
  if (!names.includes(r.reference))
    throw new Error(`${r.name}: no reference variant ${r.reference}`);
  for (const v of r.variants)
    if (v.kind === 'eval' && !r.variants.some((t) => t.kind === 'train' && t.name === v.of))
      throw new Error(`${r.name}: eval variant ${v.name} measures ${v.of}, not a train variant`);
  if (r.seeds.length < 1) throw new Error(`${r.name}: no seeds`);
}

/** The `ablation` block from the stages finished so far. */
export function ablationBlock(
  r: AblationRecipe,
  stages: Record<string, AblationStageRecord>,
): AblationBlock {
  const num = (x: unknown) => (typeof x === 'number' ? x : NaN);
  const variants = r.variants.map((v): AblationVariantResult => {
    const runs: AblationSeedRun[] = [];
    for (const seed of r.seeds) {
      const t = stages[stageName.test(seed, v.name)];
      if (!t?.done) continue;
      const cands =
        v.kind === 'train'
          ? r.finetune.candidates.map((_, i) => stages[stageName.candidate(seed, v.name, i)])
          : [];
      runs.push({
        seed,
        testAccuracy: num(t.result?.accuracy),
        ...(v.kind === 'train'
          ? {
              validationAccuracy: cands.map((c) => num(c?.result?.validationAccuracy)),
              chosen: num(t.result?.chosen),
            }
          : {}),
        cpuSeconds: [t, ...cands].reduce((s, c) => s + (c?.cpuSeconds ?? 0), 0),
      });
    }
    const settings: Record<string, unknown> =
      v.kind === 'train'
        ? { interpolant: v.interpolant, pretrained: v.pretrained, finetune: v.finetune }
        : { of: v.of, solver: v.solver, steps: v.solver === 'dopri5' ? null : v.steps };
    return {
      name: v.name,
      label: v.label,
      kind: v.kind,
      settings,
      runs,
      testAccuracy: meanStd(runs.map((x) => x.testAccuracy)),
    };
  });
  const pre: AblationBlock['pretrain'] = {};
  for (const seed of r.seeds)
    for (const interp of new Set(
      r.variants.filter((v) => v.kind === 'train').map((v) => v.interpolant),
    )) {
      const s = stages[stageName.pretrain(seed, interp)];
      if (s?.done)
        pre[`${interp}/seed${seed}`] = {
          cpuSeconds: s.cpuSeconds,
          finalLoss: typeof s.result?.finalLoss === 'number' ? s.result.finalLoss : null,
        };
    }
  return {
    question: r.question,
    reference: r.reference,
    train: r.data.train,
    test: r.data.test,
    metric: `accuracy on the first ${r.data.testLimit} images of ${r.data.test}`,
    seeds: r.seeds,
    budget: {
      trainImages: r.data.limit,
      validationImages: r.data.validation,
      testImages: r.data.testLimit,
      pretrainSteps: r.pretrain.steps,
      batchSize: r.finetune.hyperparameters.batchSize ?? r.pretrain.batchSize,
      candidates: r.finetune.candidates,
      selection: `the candidate with the highest accuracy on ${r.data.validation} images carved (seed ${r.data.seed}) from the first ${r.data.limit} of ${r.data.train}; ties: the earlier`,
    },
    pretrain: pre,
    variants,
  };
}

export async function runAblation(o: RunAblationOptions): Promise<AblationResults> {
  const r = o.recipe;
  checkAblation(r);
  const dir = o.dir;
  await fs.mkdir(dir, { recursive: true });
  const units = new UnitStore(o.unitsDir ?? join(dirname(dir), 'ablation-units'));
  const { state, file: stateFile } = await openRunState<AblationState>(dir, r, o.resume, () => ({
    recipe: r.name,
    version: r.version,
    stages: {},
  }));
  const session = { threads: o.threads, device: o.device };
  const hooks = { signal: o.signal, onStep: o.onStep, onEpoch: o.onEpoch, ...session };
  const command = o.command ?? commandLine();

  const results = (complete: boolean): AblationResults => ({
    recipe: r.name,
    version: r.version,
    complete,
    commit: gitCommit(),
    machine: machine(),
    command,
    updatedAt: new Date().toISOString(),
    settings: r,
    stages: state.stages,
    ablation: ablationBlock(r, state.stages),
  });

  // The budget's subset; validation carved from it, so no choice ever sees the test split.
  const trainAll = o.datasets?.train ?? (await loadDataset(r.data.train, { limit: r.data.limit }));
  const { train, validation } = carveValidation(trainAll, r.data.validation, r.data.seed);
  const test = o.datasets?.test ?? head(await loadDataset(r.data.test), r.data.testLimit);
  const data = {
    train: r.data.train,
    limit: r.data.limit,
    validation: r.data.validation,
    carveSeed: r.data.seed,
  };

  const trainVariants = r.variants.filter((v): v is TrainVariant => v.kind === 'train');
  const evalVariants = r.variants.filter((v): v is EvalVariant => v.kind === 'eval');
  const interpolants = [...new Set(trainVariants.map((v) => v.interpolant))];
  const perSeed =
    interpolants.length +
    trainVariants.length * (r.finetune.candidates.length + 1) +
    evalVariants.length;
  const total = perSeed * r.seeds.length;
  let index = 0;

  const stage = async (
    name: string,
    label: string,
    settings: unknown,
    who: StageUnit,
    work: (unitDir: string) => Promise<Record<string, unknown>>,
  ): Promise<AblationStageRecord> => {
    const i = index++;
    const event = (status: StageEvent['status']): StageEvent => ({
      stage: name,
      index: i,
      total,
      status,
      ...who,
    });
    const old = state.stages[name];
    if (old?.done) {
      o.onStage?.(event('skip'));
      return old;
    }
    if (o.signal?.aborted) throw new TrainingAborted(dir, 0);
    const id = unitId(label, settings);
    const mirror = async (id: string, reused: boolean) => {
      const u = await units.record(id);
      if (!u) return;
      state.stages[name] = {
        done: u.done,
        cpuSeconds: u.cpuSeconds,
        wallSeconds: u.wallSeconds,
        runs: u.runs,
        result: u.result,
        unit: id,
        reused,
      };
      await writeJson(stateFile, state);
    };
    // Done by another variant, recipe or run: reuse it without announcing work.
    if ((await units.record(id))?.done) {
      await mirror(id, true);
      await writeJson(join(dir, RESULTS_FILE), results(false));
      o.onStage?.(event('skip'));
      return state.stages[name];
    }
    o.onStage?.(event('start'));
    let run;
    try {
      run = await units.run(label, settings, work);
    } catch (e) {
      if (e instanceof TrainingAborted) await mirror(id, false);
      throw e;
    }
    await mirror(run.id, run.reused);
    await writeJson(join(dir, RESULTS_FILE), results(false));
    o.onStage?.(event(run.reused ? 'skip' : 'done'));
    return state.stages[name];
  };

  for (const seed of r.seeds) {
    const flows = new Map<string, { unit: string; modelDir: string }>();
    for (const interp of interpolants) {
      const p = r.pretrain;
      const settings = {
        kind: 'pretrain',
        data,
        net: p.net,
        interpolant: interp,
        batchSize: p.batchSize,
        lr: p.lr,
        steps: p.steps,
        head: p.head,
        solver: p.solver,
        seed,
      };
      const rec = await stage(
        stageName.pretrain(seed, interp),
        `pretrain-${interp}-s${seed}`,
        settings,
        { seed, interpolant: interp },
        async (u) => {
          const ckpt = join(u, UNIT_CHECKPOINT_DIR);
          const res = await pretrain({
            ...hooks,
            data: r.data.train,
            dataset: train,
            out: join(u, 'model'),
            overwrite: true,
            checkpointDir: ckpt,
            resume: (await fs.readdir(ckpt).catch(() => [] as string[])).length > 0,
            net: p.net,
            interpolant: interp,
            batchSize: p.batchSize,
            lr: p.lr,
            epochs: Math.ceil(p.steps / Math.floor(train.n / p.batchSize)),
            maxSteps: p.steps,
            seed,
            checkpointEvery: p.checkpointEvery,
            head: p.head,
            solver: p.solver,
            name: `flow-${interp}`,
            version: `ablation-s${seed}`,
          });
          return { modelDir: res.modelDir, steps: res.steps, finalLoss: res.finalLoss };
        },
      );
      flows.set(interp, { unit: rec.unit, modelDir: join(units.dirOf(rec.unit), 'model') });
    }

    const chosenModel = new Map<string, { unit: string; modelDir: string }>();
    for (const v of trainVariants) {
      const flow = flows.get(v.interpolant)!;
      const validationAccuracy: number[] = [];
      const cands: { unit: string; modelDir: string }[] = [];
      for (const [i, c] of r.finetune.candidates.entries()) {
        const hp = {
          ...r.finetune.hyperparameters,
          ...v.finetune,
          learningRate: c.learningRate,
          seed,
        };
        const settings = {
          kind: 'finetune',
          base: flow.unit,
          pretrained: v.pretrained,
          data,
          hyperparameters: hp,
          maxSteps: c.steps,
        };
        const rec = await stage(
          stageName.candidate(seed, v.name, i),
          `finetune-${v.name}-s${seed}-c${i}`,
          settings,
          { variant: v.name, seed, candidate: i },
          async (u) => {
            const f = await runFineTune({
              ...hooks,
              baseModelDir: flow.modelDir,
              dataset: r.data.train,
              limit: r.data.limit,
              data: train,
              evalDataset: `${r.data.train} validation`,
              evalData: validation,
              hyperparameters: hp,
              noPretrain: !v.pretrained,
              maxSteps: c.steps,
              checkpointDir: join(u, UNIT_CHECKPOINT_DIR),
              checkpointEvery: r.finetune.checkpointEvery,
              resume: 'auto',
              outputDir: join(u, 'model'),
              overwrite: true,
              name: `ablation-${v.name}`,
              version: `s${seed}.c${i}`,
              command,
            });
            return {
              learningRate: c.learningRate,
              steps: f.steps,
              validationAccuracy: f.metrics.evalAccuracy,
              trainAccuracy: f.metrics.trainAccuracy,
              finalLoss: f.metrics.finalLoss,
            };
          },
        );
        validationAccuracy.push(rec.result?.validationAccuracy as number);
        cands.push({ unit: rec.unit, modelDir: join(units.dirOf(rec.unit), 'model') });
      }
      const chosen = chooseCandidate(validationAccuracy);
      const model = cands[chosen];
      chosenModel.set(v.name, model);
      const solve = resolveHyperparameters(
        { ...r.finetune.hyperparameters, ...v.finetune },
        await readManifest(flow.modelDir),
      );
      await stage(
        stageName.test(seed, v.name),
        `test-${v.name}-s${seed}`,
        testSettings(model.unit, solve.solver, solve.steps),
        { variant: v.name, seed },
        async () => ({ ...(await measure(model.modelDir)), chosen, validationAccuracy }),
      );
    }

    for (const v of evalVariants) {
      const model = chosenModel.get(v.of)!;
      await stage(
        stageName.test(seed, v.name),
        `test-${v.of}-s${seed}`,
        testSettings(model.unit, v.solver, v.steps),
        { variant: v.name, seed },
        async () => measure(model.modelDir, { solver: v.solver, steps: v.steps }),
      );
    }
  }

  function testSettings(model: string, solver: string, steps: number) {
    return {
      kind: 'eval',
      model,
      test: r.data.test,
      testLimit: r.data.testLimit,
      solver,
      steps: solver === 'dopri5' ? null : steps,
    };
  }

  async function measure(
    modelDir: string,
    solve: { solver?: EvalVariant['solver']; steps?: number } = {},
  ): Promise<Record<string, unknown>> {
    const model = await loadPrgModel(modelDir, session);
    try {
      const e = await evaluateModel(model, test, { batchSize: 64, ...solve });
      return { accuracy: e.accuracy, n: e.n, correct: e.correct, nll: e.nll };
    } finally {
      await model.release();
    }
  }

  const final = results(true);
  await writeJson(join(dir, RESULTS_FILE), final);
  return final;
}
