/**
 * The fine-tuning run (paper §3.2, eq. 3; App. B.1 Tab. 2) behind `prg finetune` and the server's
 * fine-tune jobs: `fineTuneModel` implements job-api.ts; `runFineTune` takes the CLI's extra
 * switches (ablations: noPretrain, pool; smoke runs: limit, maxSteps). It puts the parts together:
 * hyperparameters.ts resolves the defaults, finetune-data.ts loads the datasets, finetune-nets.ts
 * builds the nets to train, finetune-loop.ts trains them (evaluating the held-out split each
 * epoch, checkpointing), finetune-export.ts writes the new model directory atomically.
 */
import { join } from 'node:path';
import { PrgModel } from '../inference';
import { LoadedModelDir, readModelDir } from '../model-dir/io';
import { commandLine } from '../model-dir/provenance';
import { ImageDataset } from '../data';
import { evaluateModel, labelMap } from './evaluate';
import { loadFineTuneData } from './finetune-data';
import { FrozenEncoder } from './frozen-encoder';
import { fineTunedModel, writeFineTunedModel } from './finetune-export';
import { FineTuneLoopSettings, trainFineTune } from './finetune-loop';
import { fineTuneNets, flowTrainingProblem } from './finetune-nets';
import { HYPERPARAMETERS, autoPhases, resolveHyperparameters } from './hyperparameters';
import { FineTuneHyperparameters, FineTuneJobOptions, FineTuneJobResult } from './job-api';

export interface RunFineTuneOptions extends FineTuneLoopSettings {
  baseModelDir: string;
  /** Already-loaded training data (tests); `dataset` is then only recorded. */
  data?: ImageDataset;
  evalDataset?: string;
  evalData?: ImageDataset;
  evalLimit?: number;
  hyperparameters: FineTuneHyperparameters;
  outputDir: string;
  overwrite?: boolean;
  name: string;
  version: string;
  /** Head input: null = flattened x_t, n = pooled to n×n; default: the base model's. */
  featurePool?: number | null;
  /** Head width when a new head is built; default: the base model's. */
  hidden?: number;
  /** The command recorded in provenance and metrics (default: this process's command line). */
  command?: string;
}

export interface RunFineTuneResult extends FineTuneJobResult {
  steps: number;
  seconds: number;
}

export async function runFineTune(o: RunFineTuneOptions): Promise<RunFineTuneResult> {
  const started = Date.now();
  const base = await readModelDir(o.baseModelDir);
  const bm = base.manifest;
  const hp = resolveHyperparameters(o.hyperparameters, bm);
  const untrainable = flowTrainingProblem(bm, hp.freezeFlow);
  if (untrainable) throw new Error(untrainable);
  const pool = o.featurePool === undefined ? bm.featurePool : o.featurePool;
  const command = o.command ?? commandLine();

  const data = await loadFineTuneData(o, bm, hp.allowResize);
  const nets = fineTuneNets(base, {
    classes: data.train.classes,
    pool,
    hidden: o.hidden,
    noPretrain: o.noPretrain,
    batchSize: hp.batchSize,
    seed: hp.seed,
  });
  const labels = labelMap(data.train, nets.classes);
  /** The current weights as a loaded model (for evaluation and export). */
  const current = (): LoadedModelDir => fineTunedModel(bm, nets, hp, pool, { ...o, command }, base);
  // A VAE stage is frozen: it only turns training images into latents (cached when unaugmented).
  const encoder = base.encoder
    ? new FrozenEncoder(base.encoder, { device: o.device, threads: o.threads }, !o.augment)
    : undefined;
  const evaluate = async () => {
    if (!data.eval) return undefined;
    const model = new PrgModel(current(), { device: o.device, threads: o.threads }, []);
    try {
      return await evaluateModel(model, data.eval, { batchSize: 64 });
    } finally {
      await model.release();
    }
  };

  const trained = await trainFineTune({
    ...o,
    base: bm,
    hp,
    nets,
    pool,
    train: data.train,
    labels,
    evaluate,
    encode: encoder ? (x, n, idx) => encoder.encode(x, n, idx) : undefined,
  }).finally(() => encoder?.release());
  const { metrics } = trained;
  const modelDir = await writeFineTunedModel(
    current(),
    data.eval && metrics.evalAccuracy !== undefined && o.evalDataset
      ? {
          value: metrics.evalAccuracy,
          evalDataset: o.evalDataset,
          evalLimit: o.evalLimit,
          n: data.eval.n,
        }
      : undefined,
    o.overwrite,
  );
  return {
    modelDir,
    metrics,
    resumedFromEpoch: trained.resumedFromEpoch,
    steps: trained.steps,
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * job-api.ts: the job's phases, "auto" for the fields it leaves out (autoPhases,
 * hyperparameters.ts): the head on the frozen flow, then flow and head. Each phase checkpoints in
 * its own directory under checkpointDir and a job restarted with it resumes (a finished phase
 * re-exports its model without a step); the last phase replaces outputDir. Only the last phase
 * measures the held-out set and reports epochs (each with its metrics: the job's history); the
 * head phase reports its steps and costs one forward solve per image.
 */
export async function fineTuneModel(opts: FineTuneJobOptions): Promise<FineTuneJobResult> {
  const bm = (await readModelDir(opts.baseModelDir)).manifest;
  // Before any phase runs: "auto" would train the head, then fail on the flow phase.
  const untrainable = flowTrainingProblem(bm, opts.hyperparameters.freezeFlow === true);
  if (untrainable) throw new Error(untrainable);
  const data = await loadFineTuneData(opts, bm, opts.hyperparameters.allowResize ?? false);
  const phases = autoPhases(data.train.n, opts.hyperparameters, opts.autoRule);
  // Progress weights: a head step is one forward solve, a flow step about three (with backward).
  const cost = phases.map((p) => (p.hyperparameters.epochs ?? 1) * (p.phase === 'head' ? 1 : 3));
  const total = cost.reduce((a, b) => a + b, 0);
  let done = 0;
  let baseModelDir = opts.baseModelDir;
  let r: RunFineTuneResult | undefined;
  let steps = 0;
  const phaseTimes: { phase: string; steps: number; seconds: number }[] = [];
  for (const [i, ph] of phases.entries()) {
    const last = i === phases.length - 1;
    const at = (fraction: number) => (done + cost[i] * fraction) / total;
    const epochs = ph.hyperparameters.epochs ?? HYPERPARAMETERS.epochs.default;
    r = await runFineTune({
      ...opts,
      baseModelDir,
      data: data.train,
      evalData: last ? data.eval : undefined,
      evalDataset: last ? opts.evalDataset : undefined,
      hyperparameters: ph.hyperparameters,
      outputDir: last ? opts.outputDir : join(opts.checkpointDir, `${ph.phase}-model`),
      checkpointDir: phases.length > 1 ? join(opts.checkpointDir, ph.phase) : opts.checkpointDir,
      version: last ? opts.version : `${opts.version}-${ph.phase}`,
      resume: 'auto',
      overwrite: true,
      command: `fine-tune job (base ${opts.baseModelDir}, data ${opts.dataset}, phase ${ph.phase})`,
      onStep: async (p) =>
        opts.onProgress?.({
          epoch: p.epoch,
          epochs: p.epochs,
          step: p.step,
          stepsPerEpoch: p.stepsPerEpoch,
          progress: at(p.globalStep / p.totalSteps),
          loss: p.loss,
          metrics: p.metrics,
        }),
      // Only the last phase's epochs are the job's epochs (its history, with held-out metrics);
      // an earlier phase reports its steps.
      onEpoch: async (p) => {
        if (!last) return;
        await opts.onProgress?.({
          epoch: p.epoch,
          epochs,
          step: 0,
          stepsPerEpoch: 0,
          progress: at(Math.min(1, (p.epoch + 1) / epochs)),
          loss: p.meanLoss,
          metrics: p.metrics,
        });
      },
    });
    baseModelDir = r.modelDir;
    done += cost[i];
    steps += r.steps;
    phaseTimes.push({ phase: ph.phase, steps: r.steps, seconds: r.seconds });
  }
  return {
    modelDir: r!.modelDir,
    metrics: r!.metrics,
    resumedFromEpoch: r!.resumedFromEpoch,
    steps,
    phases: phaseTimes,
  };
}
