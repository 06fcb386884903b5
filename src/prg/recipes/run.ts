/**
 * Running a recipe (definitions.ts): pretrain → fine-tune each candidate → select on validation →
 * evaluate on test → OOD fit, in a run directory:
 *
 *   <dir>/state.json        finished stages (result, CPU and wall seconds): skipped on resume
 *   <dir>/results.json      the results so far (rewritten after every stage; `complete` at the end)
 *   <dir>/flow/             the pretrained flow (EMA weights, untrained head)
 *   <dir>/candidates/<i>/   each fine-tuned candidate
 *   <dir>/ckpt/<stage>/     the checkpoints of the stage in progress
 *
 * A stop (AbortSignal, Ctrl-C) inside a stage lets that stage checkpoint and throws
 * TrainingAborted; the next run with `resume` skips the finished stages and continues the
 * interrupted one from its checkpoint. CPU seconds (process.cpuUsage: every thread of this
 * process, ONNX Runtime's included) are summed over the runs a stage took.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { Device } from '../../engine/runtime/device';
import { ImageDataset, head, loadDataset, subset } from '../data';
import { loadPrgModel } from '../inference';
import { readManifest, updateManifest } from '../model-dir/io';
import { commandLine, gitCommit } from '../model-dir/provenance';
import { fitOod } from '../ood/fit';
import { Rng } from '../rng';
import { EpochProgress, StepProgress, TrainingAborted } from '../training/common';
import { evaluateModel, loadDatasetFor } from '../training/evaluate';
import { runFineTune } from '../training/finetune-job';
import { pretrain } from '../training/pretrain';
import { Recipe } from './definitions';
import { TimeSpent, openRunState, startClock, writeJson } from './run-state';

export const RESULTS_FILE = 'results.json';

export interface StageRecord extends TimeSpent {
  done: boolean;
  result?: Record<string, unknown>;
}

interface RunState {
  recipe: string;
  version: number;
  stages: Record<string, StageRecord>;
}

/** What a stage works on, carried into the training log so its curves can be told apart. */
export interface StageUnit {
  /** Ablations: the variant trained or measured (absent for a pretrain shared by variants). */
  variant?: string;
  /** Ablations: the training seed. */
  seed?: number;
  /** The fine-tuning candidate (index into the recipe's learning-rate candidates). */
  candidate?: number;
  /** The flow being pretrained (ablation pretrains, one per interpolant and seed). */
  interpolant?: string;
}

export interface StageEvent extends StageUnit {
  stage: string;
  index: number;
  total: number;
  status: 'start' | 'skip' | 'done';
}

export interface RunRecipeOptions {
  recipe: Recipe;
  dir: string;
  /** Continue a run directory that has a state (required when it has one). */
  resume?: boolean;
  threads?: number;
  device?: Device;
  signal?: AbortSignal;
  onStage?: (e: StageEvent) => void;
  onStep?: (p: StepProgress) => void;
  onEpoch?: (p: EpochProgress) => void;
  /** Recorded in the results (default: this process's command line). */
  command?: string;
  /** Already-loaded splits (tests); the specs are then only recorded. */
  datasets?: { train?: ImageDataset; test?: ImageDataset; oodValidation?: ImageDataset };
}

export interface RecipeResults {
  recipe: string;
  version: number;
  complete: boolean;
  commit: string;
  machine: { cpus: number; cpu: string; memoryGiB: number; platform: string };
  command: string;
  updatedAt: string;
  settings: Recipe;
  stages: Record<string, StageRecord>;
  /** Validation accuracy per candidate and the one chosen (present once all are trained). */
  selection?: { validationAccuracy: number[]; chosen: number; rule: string };
  testAccuracy?: number;
}

/** A seeded split of `ds` into `n` validation images and the rest (the training part). */
export function carveValidation(
  ds: ImageDataset,
  n: number,
  seed: number,
): { train: ImageDataset; validation: ImageDataset } {
  if (!(n >= 1 && n < ds.n))
    throw new Error(`validation split of ${n} images from ${ds.n}: need 1 ≤ n < ${ds.n}`);
  const perm = new Rng(`${seed}:validation`).permutation(ds.n);
  const val = Array.from(perm.subarray(0, n)).sort((a, b) => a - b);
  const rest = Array.from(perm.subarray(n)).sort((a, b) => a - b);
  return {
    train: subset(ds, rest, `${ds.source} minus validation`),
    validation: subset(ds, val, `${ds.source} validation (${n}, seed ${seed})`),
  };
}

/** The index of the best validation accuracy; ties go to the earlier (cheaper-listed) candidate. */
export function chooseCandidate(validationAccuracy: number[]): number {
  let best = 0;
  for (let i = 1; i < validationAccuracy.length; i++)
    if (validationAccuracy[i] > validationAccuracy[best]) best = i;
  return best;
}

export function machine(): RecipeResults['machine'] {
  return {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.arch()}`,
  };
}

export async function runRecipe(o: RunRecipeOptions): Promise<RecipeResults> {
  const r = o.recipe;
  const dir = o.dir;
  await fs.mkdir(dir, { recursive: true });
  const { state, file: stateFile } = await openRunState<RunState>(dir, r, o.resume, () => ({
    recipe: r.name,
    version: r.version,
    stages: {},
  }));
  const session = { threads: o.threads, device: o.device };

  const results = (): RecipeResults => ({
    recipe: r.name,
    version: r.version,
    complete: false,
    commit: gitCommit(),
    machine: machine(),
    command: o.command ?? commandLine(),
    updatedAt: new Date().toISOString(),
    settings: r,
    stages: state.stages,
  });
  const saveResults = (extra: Partial<RecipeResults> = {}) =>
    writeJson(join(dir, RESULTS_FILE), { ...results(), ...extra });

  // Data: the validation split is carved from the training split, so selection never sees test.
  const trainAll = o.datasets?.train ?? (await loadDataset(r.data.train, { limit: r.data.limit }));
  const { train, validation } = carveValidation(trainAll, r.data.validation, r.data.seed);

  const names = [
    'pretrain',
    ...r.finetune.candidates.map((_, i) => `finetune-${i}`),
    'eval',
    'ood',
  ];
  let index = 0;
  const stage = async (
    name: string,
    unit: StageUnit,
    work: () => Promise<Record<string, unknown>>,
  ): Promise<Record<string, unknown>> => {
    const i = index++;
    const event = (status: StageEvent['status']): StageEvent => ({
      stage: name,
      index: i,
      total: names.length,
      status,
      ...unit,
    });
    const rec = (state.stages[name] ??= { done: false, cpuSeconds: 0, wallSeconds: 0, runs: 0 });
    if (rec.done) {
      o.onStage?.(event('skip'));
      return rec.result ?? {};
    }
    o.onStage?.(event('start'));
    const stop = startClock(rec);
    const spent = async () => {
      stop();
      await writeJson(stateFile, state);
    };
    try {
      rec.result = await work();
    } catch (e) {
      if (e instanceof TrainingAborted) await spent();
      throw e;
    }
    rec.done = true;
    await spent();
    await saveResults();
    o.onStage?.(event('done'));
    return rec.result;
  };
  const abortCheck = () => {
    if (o.signal?.aborted) throw new TrainingAborted(dir, 0);
  };
  const hooks = { signal: o.signal, onStep: o.onStep, onEpoch: o.onEpoch, ...session };

  const flowDir = join(dir, 'flow');
  const ckpt = (s: string) => join(dir, 'ckpt', s);
  const hasCheckpoint = async (s: string) =>
    (await fs.readdir(ckpt(s)).catch(() => [] as string[])).length > 0;

  await stage('pretrain', { interpolant: r.pretrain.interpolant }, async () => {
    const p = r.pretrain;
    const res = await pretrain({
      ...hooks,
      data: r.data.train,
      dataset: train,
      out: flowDir,
      overwrite: true,
      checkpointDir: ckpt('pretrain'),
      resume: await hasCheckpoint('pretrain'),
      net: p.net,
      interpolant: p.interpolant,
      batchSize: p.batchSize,
      lr: p.lr,
      epochs: Math.ceil(p.steps / Math.floor(train.n / p.batchSize)),
      maxSteps: p.steps,
      seed: r.data.seed,
      checkpointEvery: p.checkpointEvery,
      head: p.head,
      solver: p.solver,
      name: `${r.name}-flow`,
      version: `${r.version}`,
    });
    return { modelDir: res.modelDir, steps: res.steps, finalLoss: res.finalLoss };
  });

  const validationAccuracy: number[] = [];
  for (const [i, c] of r.finetune.candidates.entries()) {
    abortCheck();
    const res = await stage(`finetune-${i}`, { candidate: i }, async () => {
      const f = await runFineTune({
        ...hooks,
        baseModelDir: flowDir,
        dataset: r.data.train,
        data: train,
        evalDataset: `${r.data.train} validation`,
        evalData: validation,
        hyperparameters: { ...r.finetune.hyperparameters, learningRate: c.learningRate },
        maxSteps: c.steps,
        checkpointDir: ckpt(`finetune-${i}`),
        checkpointEvery: r.finetune.checkpointEvery,
        resume: 'auto',
        outputDir: join(dir, 'candidates', `${i}`),
        overwrite: true,
        name: r.name,
        version: `${r.version}.${i}`,
        command: o.command,
      });
      return {
        modelDir: f.modelDir,
        learningRate: c.learningRate,
        steps: f.steps,
        validationAccuracy: f.metrics.evalAccuracy,
        trainAccuracy: f.metrics.trainAccuracy,
        finalLoss: f.metrics.finalLoss,
      };
    });
    validationAccuracy.push(res.validationAccuracy as number);
  }
  const chosen = chooseCandidate(validationAccuracy);
  const selection = {
    validationAccuracy,
    chosen,
    rule: `highest accuracy on ${r.data.validation} images carved from ${r.data.train}`,
  };
  const modelDir = join(dir, 'candidates', `${chosen}`);

  abortCheck();
  const ev = await stage('eval', {}, async () => {
    const test =
      o.datasets?.test ?? head(await loadDataset(r.data.test), r.data.testLimit ?? Infinity);
    const model = await loadPrgModel(modelDir, session);
    try {
      const e = await evaluateModel(model, test, { batchSize: 64 });
      const key = `accuracy:${r.data.test}${r.data.testLimit ? `:limit${r.data.testLimit}` : ''}`;
      await updateManifest(modelDir, (m) => ({
        ...m,
        metrics: {
          ...m.metrics,
          [key]: {
            value: e.accuracy,
            command: `npx prg recipe run ${r.name}`,
            data: r.data.test,
            n: e.n,
            measuredAt: new Date().toISOString(),
          },
        },
      }));
      return { modelDir, accuracy: e.accuracy, n: e.n, correct: e.correct, nll: e.nll };
    } finally {
      await model.release();
    }
  });

  abortCheck();
  await stage('ood', {}, async () => {
    const m = await readManifest(modelDir);
    const select =
      o.datasets?.oodValidation ??
      (await loadDatasetFor(r.data.oodValidation, m, { limit: r.ood.maxSelect }));
    const fit = await fitOod(modelDir, train, validation, {
      maxTrain: r.ood.maxTrain,
      maxHeldout: r.ood.maxHeldout,
      selectPrimaryWith: select,
      maxSelect: r.ood.maxSelect,
      seed: r.data.seed,
      signal: o.signal,
      ...session,
    });
    return {
      primary: fit.primary,
      nTrain: fit.nTrain,
      nHeldout: fit.nHeldout,
      validationAuroc: fit.primarySelection?.auroc ?? null,
    };
  });

  const final: RecipeResults = {
    ...results(),
    complete: true,
    selection,
    testAccuracy: ev.accuracy as number,
  };
  await writeJson(join(dir, RESULTS_FILE), final);
  return final;
}
