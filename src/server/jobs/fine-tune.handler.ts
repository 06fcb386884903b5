/**
 * The one handler of the `fine-tune` job: runs the trainer (FINE_TUNE_TRAINER, fineTuneModel from
 * src/prg/training) with the job's checkpoint dir, so a restarted job resumes from its last epoch,
 * and its AbortSignal, so cancel/shutdown stop it within one step.
 */
import { Inject, Injectable, Optional } from '@nestjs/common';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { MetricsService } from '../services/metrics.service';
import {
  FINE_TUNE_TRAINER,
  FineTuneResultView,
  FineTuneTrainer,
  JobCancelledError,
  JobContext,
} from './fine-tune.types';

@Injectable()
export class FineTuneHandler {
  constructor(
    @Inject(FINE_TUNE_TRAINER) private readonly trainer: FineTuneTrainer,
    @Optional() private readonly metrics?: MetricsService,
  ) {}

  readonly handle = async (ctx: JobContext): Promise<FineTuneResultView> => {
    const d = ctx.data;
    const end = this.metrics?.jobDuration.startTimer();
    let status = 'failed';
    try {
      await fs.mkdir(d.checkpointDir, { recursive: true });
      await fs.mkdir(path.dirname(d.outputDir), { recursive: true });
      const r = await this.trainer({
        baseModelDir: d.modelDir,
        dataset: d.datasetSpec,
        hyperparameters: d.hyperparameters,
        outputDir: d.outputDir,
        name: d.outputName,
        version: d.outputVersion,
        checkpointDir: d.checkpointDir,
        onProgress: (p) => ctx.progress(p),
        signal: ctx.signal,
      });
      if (d.classes) await nameClasses(r.modelDir, d.classes);
      status = 'succeeded';
      // Checkpoints are only needed to resume; the job is done.
      await fs.rm(path.dirname(d.checkpointDir), { recursive: true, force: true });
      return {
        model: `${d.outputName}@${d.outputVersion}`,
        modelDir: r.modelDir,
        metrics: r.metrics,
        ...(r.resumedFromEpoch !== undefined ? { resumedFromEpoch: r.resumedFromEpoch } : {}),
      };
    } catch (e) {
      // The trainer's own abort error says less than why we aborted (cancel vs shutdown).
      if (ctx.signal.aborted) {
        const reason = ctx.signal.reason as unknown;
        status = reason instanceof JobCancelledError ? 'cancelled' : 'interrupted';
        if (reason instanceof JobCancelledError)
          await fs.rm(path.dirname(d.checkpointDir), { recursive: true, force: true });
        throw reason;
      }
      throw e;
    } finally {
      end?.({ status });
    }
  };
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
