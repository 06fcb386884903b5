/**
 * Fine-tune jobs as the API reports them, and the queue abstraction both backends implement
 * (bull on Redis, or the single-node in-process queue).
 */
import type { Observable } from 'rxjs';
import type {
  FineTuneHyperparameters,
  FineTuneJobOptions,
  FineTuneJobResult,
  FineTuneProgress,
} from '../../prg/training/job-api';
import type {
  EpochMetricsDto,
  FineTuneJobResponse,
  FineTuneResultDto,
  JobRunDto,
} from './fine-tune.dto';
import type { FineTuneStatus } from './fine-tune-status';

/** What is enqueued: everything a worker needs, resolved by the API (no registry in workers). */
export interface FineTuneJobData {
  id: string;
  /** Base model "name@version" and its directory. */
  model: string;
  modelDir: string;
  dataset: string;
  /** Dataset files for the trainer (see DatasetsService.locate). */
  datasetSpec: string;
  /** The dataset's class names (IDX files carry only label numbers; names may come with the upload). */
  classes?: string[];
  hyperparameters: FineTuneHyperparameters;
  /** Held-out dataset (id and spec): per-epoch evaluation and OOD threshold calibration. */
  evalDataset?: string;
  evalDatasetSpec?: string;
  /**
   * Images the new model should flag (id and spec): the OOD fit makes the score that best tells
   * them from held-out in-distribution images the primary (fitOod's selectPrimaryWith).
   */
  oodDataset?: string;
  oodDatasetSpec?: string;
  /** The new model's name and version, written to MODELS_DIR/<name>-<version>/. */
  outputName: string;
  outputVersion: string;
  outputDir: string;
  /**
   * Where the model is built before it is published: MODELS_DIR/.staging-<id>/ (hidden from the
   * registry, same filesystem as outputDir so the final rename is atomic).
   */
  stagingDir: string;
  checkpointDir: string;
  createdAt: string;
  /**
   * Who queued it, for MAX_JOBS_PER_KEY: a digest of the API key (never the key), or "anonymous"
   * without one.
   */
  owner?: string;
}

/** A job as the API reports it: the REST response class (fine-tune.dto.ts) is the type. */
export type FineTuneJobView = FineTuneJobResponse;
export type FineTuneResultView = FineTuneResultDto;
export type EpochMetrics = EpochMetricsDto;

export type FineTuneEvent =
  | { type: 'status'; jobId: string; status: FineTuneStatus; error?: string; at: string }
  | { type: 'progress'; jobId: string; progress: FineTuneProgress; at: string };

/** Progress stored with a job: the latest report plus the per-epoch history. */
export interface StoredProgress {
  latest: FineTuneProgress | null;
  history: EpochMetrics[];
  startedAt?: string;
  runs?: JobRun[];
}
export type JobRun = JobRunDto;

/** What a worker gives the one fine-tune handler. */
export interface JobContext {
  data: FineTuneJobData;
  signal: AbortSignal;
  attempt: number;
  progress(p: FineTuneProgress): Promise<void>;
}

export type JobHandler = (ctx: JobContext) => Promise<FineTuneResultView>;

/** Job names and their handlers: exactly one handler per name, checked when a worker starts. */
export const JOB_NAMES = ['fine-tune'] as const;
export type JobName = (typeof JOB_NAMES)[number];

export interface JobQueue {
  readonly kind: 'bull' | 'memory';
  add(data: FineTuneJobData): Promise<FineTuneJobView>;
  get(id: string): Promise<FineTuneJobView | null>;
  list(): Promise<FineTuneJobView[]>;
  /** Jobs of `owner` (FineTuneJobData.owner) queued or running, for MAX_JOBS_PER_KEY. */
  unfinished(owner: string): Promise<number>;
  /** Flags the job; a running job stops within one step. Returns the view after flagging. */
  cancel(id: string): Promise<FineTuneJobView | null>;
  /** Every job event (all processes, for bull). */
  readonly events: Observable<FineTuneEvent>;
  /** Jobs per state, for the queue-depth gauge. */
  counts(): Promise<Record<string, number>>;
  /** Start processing here with these handlers (one per JOB_NAMES entry). */
  startWorker(handlers: Record<JobName, JobHandler>): Promise<void>;
  /** Stops the worker; a running job is interrupted and returned to the queue (bull). */
  close(): Promise<void>;
}

/** The trainer the handler calls: fineTuneModel from src/prg/training/finetune-job.ts. */
export type FineTuneTrainer = (opts: FineTuneJobOptions) => Promise<FineTuneJobResult>;

export const FINE_TUNE_TRAINER = Symbol('FINE_TUNE_TRAINER');

/** OOD calibration of a finished model: fitOodFromSpecs from src/prg/ood/fit.ts. */
export type OodFitter = (
  modelDir: string,
  dataset: string,
  evalDataset: string | undefined,
  opts: { allowResize?: boolean; seed?: number; signal?: AbortSignal; selectPrimaryWith?: string },
) => Promise<{
  primary: string;
  thresholds: Record<string, unknown>;
  primarySelection?: { auroc: Record<string, number> };
}>;
export const OOD_FITTER = Symbol('OOD_FITTER');
export const JOB_QUEUE = Symbol('JOB_QUEUE');
export const JOBS_CONFIG = Symbol('JOBS_CONFIG');

/** Thrown inside a handler when its job was cancelled / the process is shutting down. */
export class JobCancelledError extends Error {
  constructor() {
    super('cancelled');
  }
}
export class JobInterruptedError extends Error {
  constructor() {
    super('interrupted: the worker shut down; the job returns to the queue');
  }
}

export function checkHandlers(handlers: Partial<Record<string, JobHandler>>): void {
  const missing = JOB_NAMES.filter((n) => typeof handlers[n] !== 'function');
  const extra = Object.keys(handlers).filter((n) => !(JOB_NAMES as readonly string[]).includes(n));
  if (missing.length || extra.length)
    throw new Error(
      `job handlers: ${missing.length ? `missing for ${missing.join(', ')}` : ''}${missing.length && extra.length ? '; ' : ''}${extra.length ? `no such job ${extra.join(', ')}` : ''}`,
    );
}
