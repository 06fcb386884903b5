/**
 * The one handler of the `fine-tune` job: runs the trainer (FINE_TUNE_TRAINER, fineTuneModel from
 * src/prg/training) with the job's checkpoint dir, so a restarted job resumes from its last epoch,
 * and its AbortSignal, so cancel/shutdown stop it within one step; fits the OOD thresholds of the
 * new model; then publishes it into MODELS_DIR with one rename.
 */
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { MetricsService } from '../metrics/metrics.service';
import {
  FineTuneJobData,
  FINE_TUNE_TRAINER,
  OOD_FITTER,
  OodFitter,
  FineTuneResultView,
  FineTuneTrainer,
  JobCancelledError,
  JobContext,
} from './fine-tune.types';
import { removeJobFiles } from './job-files';
import { writeOwnerFile } from '../common/stale-temp';
import { isStorageFull, STORAGE_FULL } from '../common/storage-full';

@Injectable()
export class FineTuneHandler {
  private readonly logger = new Logger('FineTuneHandler');

  constructor(
    @Inject(FINE_TUNE_TRAINER) private readonly trainer: FineTuneTrainer,
    @Inject(OOD_FITTER) private readonly oodFitter: OodFitter,
    @Optional() private readonly metrics?: MetricsService,
  ) {}

  /**
   * OOD thresholds for the new model (fitOodFromSpecs: class-conditional Gaussians on the training
   * set, 95 %-TPR thresholds on the held-out set or a held-out part of the training set; the
   * primary chosen on the job's oodDataset when it has one). A model
   * without thresholds still classifies, so a failed fit is reported in the result, not fatal.
   */
  private async fitOod(
    modelDir: string,
    d: FineTuneJobData,
    signal: AbortSignal,
  ): Promise<FineTuneResultView['ood']> {
    try {
      const r = await this.oodFitter(modelDir, d.datasetSpec, d.evalDatasetSpec, {
        allowResize: d.hyperparameters.allowResize,
        seed: d.hyperparameters.seed,
        ...(d.oodDatasetSpec ? { selectPrimaryWith: d.oodDatasetSpec } : {}),
        signal,
      });
      return {
        primary: r.primary,
        scores: Object.keys(r.thresholds).sort(),
        ...(r.primarySelection ? { selectionAuroc: r.primarySelection.auroc } : {}),
      };
    } catch (e) {
      if (signal.aborted) throw e;
      this.logger.warn(`job ${d.id}: OOD fit failed: ${(e as Error).message}`);
      return { error: (e as Error).message };
    }
  }

  readonly handle = async (ctx: JobContext): Promise<FineTuneResultView> => {
    const d = ctx.data;
    // A rerun of a job whose process died after publishing but before the queue heard of it
    // (bull hands a job with a lost lock to another worker): the model is there, its checkpoints
    // are gone; training again would replace it with another one. Answer with what was published.
    const published = await readPublishedResult(d);
    if (published) {
      this.logger.warn(`job ${d.id}: already published ${published.model}; not training again`);
      await removeJobFiles(d);
      return published;
    }
    const end = this.metrics?.jobDuration.startTimer();
    let status = 'failed';
    try {
      await fs.mkdir(d.checkpointDir, { recursive: true });
      await fs.rm(d.stagingDir, { recursive: true, force: true });
      await fs.mkdir(d.stagingDir, { recursive: true });
      // Who writes here: an API or worker restarting on this host removes it if this process died.
      await writeOwnerFile(d.stagingDir);
      const staged = path.join(d.stagingDir, 'model');
      const r = await this.trainer({
        baseModelDir: d.modelDir,
        dataset: d.datasetSpec,
        ...(d.evalDatasetSpec ? { evalDataset: d.evalDatasetSpec } : {}),
        hyperparameters: d.hyperparameters,
        outputDir: staged,
        name: d.outputName,
        version: d.outputVersion,
        checkpointDir: d.checkpointDir,
        onProgress: (p) => ctx.progress(p),
        signal: ctx.signal,
      });
      if (d.classes) await nameClasses(r.modelDir, d.classes);
      const ood = await this.fitOod(r.modelDir, d, ctx.signal);
      const result: FineTuneResultView = {
        model: `${d.outputName}@${d.outputVersion}`,
        modelDir: d.outputDir,
        metrics: r.metrics,
        ...(r.resumedFromEpoch !== undefined ? { resumedFromEpoch: r.resumedFromEpoch } : {}),
        ...(r.steps !== undefined ? { steps: r.steps } : {}),
        ood,
      };
      // The result travels inside the model directory, so it is published by the same rename.
      await fs.writeFile(
        path.join(r.modelDir, JOB_RESULT_FILE),
        JSON.stringify({ jobId: d.id, result }, null, 2) + '\n',
      );
      // Publish: one rename into MODELS_DIR (the directory name holds the job id).
      await fs.rm(d.outputDir, { recursive: true, force: true });
      await fs.rename(r.modelDir, d.outputDir);
      status = 'succeeded';
      // Checkpoints and staging are only needed until the model is published.
      await removeJobFiles(d);
      return result;
    } catch (e) {
      // The trainer's own abort error says less than why we aborted (cancel vs shutdown).
      if (ctx.signal.aborted) {
        const reason = ctx.signal.reason as unknown;
        status = reason instanceof JobCancelledError ? 'cancelled' : 'interrupted';
        if (reason instanceof JobCancelledError) await removeJobFiles(d);
        throw reason;
      }
      // The job's reason names the cause (its error is shown as is; host paths left out).
      if (isStorageFull(e)) {
        // The half-written model goes (and frees its space); complete checkpoints stay.
        await fs.rm(d.stagingDir, { recursive: true, force: true }).catch(() => undefined);
        throw new Error(
          `${STORAGE_FULL}: no space left on the storage volume of MODELS_DIR or JOBS_DIR while the job wrote its checkpoints or model; its half-written model was removed`,
          { cause: e },
        );
      }
      throw e;
    } finally {
      end?.({ status });
    }
  };
}

/** Written into a job's model directory before it is published: which job made it, and what. */
export const JOB_RESULT_FILE = 'fine-tune-result.json';

/** The result a job stored in its published model directory, or null (not published by it). */
async function readPublishedResult(d: FineTuneJobData): Promise<FineTuneResultView | null> {
  let stored: { jobId?: unknown; result?: FineTuneResultView };
  try {
    stored = JSON.parse(await fs.readFile(path.join(d.outputDir, JOB_RESULT_FILE), 'utf8')) as {
      jobId?: unknown;
      result?: FineTuneResultView;
    };
  } catch {
    return null;
  }
  return stored.jobId === d.id && stored.result ? stored.result : null;
}

/**
 * An IDX dataset reaches the trainer as label numbers ("0", "1", ...); when the upload named its
 * classes, the new model's manifest gets those names (manifest rewritten via temp file + rename).
 */
async function nameClasses(modelDir: string, classes: string[]): Promise<void> {
  const file = path.join(modelDir, 'manifest.json');
  const m = JSON.parse(await fs.readFile(file, 'utf8')) as { classes?: string[] };
  const numbered = classes.every((c, i) => c === String(i));
  if (numbered || !Array.isArray(m.classes) || m.classes.length !== classes.length) return;
  if (!m.classes.every((c, i) => c === String(i))) return; // the trainer named them itself
  m.classes = classes;
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, JSON.stringify(m, null, 2));
  await fs.rename(tmp, file);
}
