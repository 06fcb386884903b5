/**
 * Fine-tune jobs: validation before enqueuing (model and dataset exist, shapes match unless
 * allowResize, hyperparameter ranges), the queue (bull or in-process), job events, and what follows
 * a job (the registry rescans so the new version is servable at once; queue-depth metrics).
 */
import { imageInput } from '../../prg/manifest';
import {
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { filter, Observable, Subscription } from 'rxjs';
import { ApiError } from '../common/errors';
import { ownerInFile, removeStaleTemp } from '../common/stale-temp';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { DatasetsService } from '../datasets/datasets.service';
import { HealthService } from '../health/health.service';
import { MetricsService } from '../metrics/metrics.service';
import { FineTuneHandler } from './fine-tune.handler';
import {
  FineTuneEvent,
  FineTuneJobData,
  FineTuneJobView,
  JOB_QUEUE,
  JOBS_CONFIG,
  JobQueue,
} from './fine-tune.types';
import { TERMINAL } from './fine-tune-status';
import { cleanHyperparameters, hyperparameterProblems } from './hyperparameters';
import { JobsConfig } from './jobs.config';
import { defaultFineTuneBase, fineTuneOutputName } from './default-base';
import type { CreateFineTuneInput } from './fine-tune.dto';
import type { ModelManifest } from '../../prg/manifest';
import { flowTrainingProblem } from '../../prg/training/finetune-nets';

/** What jobs need from the model catalog (the ML boundary, MlService, implements it). */
export interface ModelCatalog {
  resolve(ref?: string | null): Promise<{ id: string; dir: string; manifest: ModelManifest }>;
  /** The installed model `ref` names, or undefined (no rescan, no error). */
  find(ref: string): { id: string; dir: string; manifest: ModelManifest } | undefined;
  rescan(): Promise<void>;
}
export const MODEL_CATALOG = Symbol('MODEL_CATALOG');

export interface SseMessage {
  type: string;
  data: unknown;
}

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const ID_RE = /^ft_[0-9a-f]{12}$/;

@Injectable()
export class FineTunesService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('FineTunes');
  private subs: Subscription[] = [];
  private gaugeTimer: NodeJS.Timeout | null = null;
  private readonly creating = new Map<string, Promise<unknown>>();
  /** Succeeded jobs whose model version this process's catalog is known to list (bounded). */
  private readonly caughtUp = new Set<string>();

  constructor(
    @Inject(JOB_QUEUE) private readonly queue: JobQueue,
    @Inject(JOBS_CONFIG) private readonly config: JobsConfig,
    @Inject(SERVER_CONFIG) private readonly server: ServerConfig,
    @Inject(MODEL_CATALOG) private readonly models: ModelCatalog,
    private readonly datasets: DatasetsService,
    private readonly handler: FineTuneHandler,
    @Optional() private readonly metrics?: MetricsService,
    @Optional() private readonly health?: HealthService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.removeStaleStaging();
    this.subs.push(
      this.queue.events.subscribe((e) => {
        if (e.type === 'status' && e.status === 'succeeded')
          // The worker (here or elsewhere) wrote a new model version: make it servable now.
          void this.models
            .rescan()
            .catch((err) =>
              this.logger.error(`rescan after job ${e.jobId}: ${(err as Error).message}`),
            );
        if (e.type === 'status') void this.updateGauge();
      }),
    );
    this.datasets.onDelete(async (id) => {
      const busy = (await this.queue.list()).find(
        (j) => [j.dataset, j.evalDataset, j.oodDataset].includes(id) && !TERMINAL.has(j.status),
      );
      return busy ? `fine-tune ${busy.id} (${busy.status}) reads it` : null;
    });
    if (this.config.worker) {
      await this.queue.startWorker({ 'fine-tune': this.handler.handle });
      this.logger.log(
        `fine-tune worker running in this process (${this.queue.kind} queue${this.queue.kind === 'memory' ? ', single node' : ''})`,
      );
    }
    await this.updateGauge();
    this.gaugeTimer = setInterval(() => void this.updateGauge(), 15_000);
    this.gaugeTimer.unref();
  }

  /**
   * Staging dirs (MODELS_DIR/.staging-<job>, hidden from the registry) of a process that died while
   * writing a model there: removed at once when it ran on this host, else after a day (a job may
   * still be running elsewhere; a job that resumes wipes its staging dir itself).
   */
  private async removeStaleStaging(): Promise<void> {
    const removed = await removeStaleTemp(this.server.modelsDir, {
      match: (n) => n.startsWith('.staging-'),
      owner: ownerInFile,
      maxAgeMs: 24 * 3600_000,
    });
    if (removed.length)
      this.logger.warn(`removed staging dir(s) of a stopped process: ${removed.join(', ')}`);
  }

  /** Shutdown: the queue interrupts a running job; with bull it goes back to the queue. */
  async onApplicationShutdown(): Promise<void> {
    if (this.gaugeTimer) clearInterval(this.gaugeTimer);
    for (const s of this.subs) s.unsubscribe();
    await this.queue.close();
  }

  private async updateGauge(): Promise<void> {
    if (!this.metrics) return;
    try {
      const counts = await this.queue.counts();
      for (const [state, n] of Object.entries(counts))
        this.metrics.queueDepth.set({ queue: 'fine-tunes', state }, n);
    } catch {
      /* Redis briefly away: keep the last values */
    }
  }

  /**
   * Queues a job for the client holding `apiKey` (undefined: no key). Jobs per key are capped at
   * MAX_JOBS_PER_KEY queued or running: one client cannot fill the queue for everyone.
   */
  create(input: CreateFineTuneInput, apiKey?: string): Promise<FineTuneJobView> {
    // A key counts only where keys are checked: otherwise any made-up header would be a new budget.
    const owner =
      apiKey === undefined || this.server.apiKeys.length === 0
        ? 'anonymous'
        : `key:${createHash('sha256').update(apiKey).digest('hex').slice(0, 16)}`;
    // One create per owner at a time in this process, so two concurrent requests cannot both
    // pass the check (across replicas the cap can be exceeded by the requests racing there).
    const prev = this.creating.get(owner) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.createFor(input, owner));
    const tail = next.catch(() => undefined);
    this.creating.set(owner, tail);
    void tail.then(() => {
      if (this.creating.get(owner) === tail) this.creating.delete(owner);
    });
    return next;
  }

  private async createFor(input: CreateFineTuneInput, owner: string): Promise<FineTuneJobView> {
    const limit = this.config.maxJobsPerKey;
    if (limit > 0) {
      const n = await this.queue.unfinished(owner);
      if (n >= limit)
        throw new ApiError(
          HttpStatus.TOO_MANY_REQUESTS,
          'TOO_MANY_JOBS',
          `${n} fine-tune(s) of this ${owner === 'anonymous' ? 'server (no API key)' : 'API key'} are queued or running, the most allowed (MAX_JOBS_PER_KEY=${limit}); wait for one to finish or cancel one`,
        );
    }
    const problems: string[] = [];
    if (input.model != null && (typeof input.model !== 'string' || input.model === ''))
      problems.push('model: "name" or "name@version" (omit for the default model)');
    if (typeof input.dataset !== 'string' || input.dataset === '')
      problems.push('dataset: required (an id from POST /datasets)');
    if (input.evalDataset != null && typeof input.evalDataset !== 'string')
      problems.push('evalDataset: a dataset id from POST /datasets');
    if (input.oodDataset != null && typeof input.oodDataset !== 'string')
      problems.push('oodDataset: a dataset id from POST /datasets');
    if (input.oodDataset != null && input.oodDataset === input.dataset)
      problems.push('oodDataset: images to flag, so not the training dataset');
    if (input.name != null && (typeof input.name !== 'string' || !NAME_RE.test(input.name)))
      problems.push('name: 1-64 letters, digits, ".", "-" or "_"');
    problems.push(
      ...hyperparameterProblems(input.hyperparameters, {
        maxEpochs: this.config.maxEpochs,
        maxSteps: this.server.maxSteps,
      }),
    );
    if (problems.length)
      throw new ApiError(HttpStatus.BAD_REQUEST, 'INVALID_HYPERPARAMETERS', problems.join('; '));
    const hp = cleanHyperparameters(input.hyperparameters);

    // 404 MODEL_NOT_FOUND; no model named: the default model's base flow when installed.
    const model =
      input.model != null
        ? await this.models.resolve(input.model)
        : defaultFineTuneBase(await this.models.resolve(null), (ref) => this.models.find(ref));
    const untrainable = flowTrainingProblem(model.manifest, hp.freezeFlow === true);
    if (untrainable) throw new ApiError(HttpStatus.BAD_REQUEST, 'MODEL_NOT_TRAINABLE', untrainable);
    const ds = await this.datasets.locate(input.dataset); // 404 DATASET_NOT_FOUND
    const evalDs = input.evalDataset ? await this.datasets.locate(input.evalDataset) : null;
    const oodDs = input.oodDataset ? await this.datasets.locate(input.oodDataset) : null;
    const img = imageInput(model.manifest);
    const want = [img.channels, img.height, img.width];
    for (const d of [ds, evalDs, oodDs].filter((x) => x !== null)) {
      const have = d.info.shape;
      if (!hp.allowResize && (have === null || have.join('x') !== want.join('x')))
        throw new ApiError(
          HttpStatus.BAD_REQUEST,
          'SHAPE_MISMATCH',
          `dataset ${d.info.id} has images of shape ${have ? have.join('×') : `mixed (${(d.info.shapes ?? []).join(', ')})`} (C×H×W) but model ${model.id} takes ${want.join('×')}; set hyperparameters.allowResize=true to resize/convert them`,
        );
    }
    if (evalDs && evalDs.info.classes.join('\n') !== ds.info.classes.join('\n'))
      throw new ApiError(
        HttpStatus.BAD_REQUEST,
        'CLASS_MISMATCH',
        `evalDataset ${evalDs.info.id} has classes ${evalDs.info.classes.join(', ')} but dataset ${ds.info.id} has ${ds.info.classes.join(', ')}`,
      );

    const id = `ft_${randomBytes(6).toString('hex')}`;
    const outputName = fineTuneOutputName(model.manifest, input.name, ds.info.id);
    // A fine-tune of a fine-tune: "1.0-ft.<a>" becomes "1.0-ft.<b>", not "1.0-ft.<a>-ft.<b>"
    // (the manifest's provenance.parent records the lineage).
    const baseVersion = model.manifest.version.replace(/(-ft\.[0-9a-f]{12})+$/, '');
    const outputVersion = `${baseVersion}-ft.${id.slice(3)}`;
    const data: FineTuneJobData = {
      id,
      model: model.id,
      modelDir: model.dir,
      dataset: ds.info.id,
      datasetSpec: await this.datasets.spec(ds.info.id),
      classes: ds.info.classes,
      ...(evalDs
        ? { evalDataset: evalDs.info.id, evalDatasetSpec: await this.datasets.spec(evalDs.info.id) }
        : {}),
      ...(oodDs
        ? { oodDataset: oodDs.info.id, oodDatasetSpec: await this.datasets.spec(oodDs.info.id) }
        : {}),
      hyperparameters: hp,
      outputName,
      outputVersion,
      outputDir: path.join(this.server.modelsDir, `${outputName}-${outputVersion}`),
      stagingDir: path.join(this.server.modelsDir, `.staging-${id}`),
      checkpointDir: path.join(this.config.jobsDir, id, 'checkpoints'),
      createdAt: new Date().toISOString(),
      owner,
    };
    const view = await this.queue.add(data);
    this.logger.log(`job ${id}: ${model.id} on ${ds.info.id} → ${outputName}@${outputVersion}`);
    return view;
  }

  list(): Promise<FineTuneJobView[]> {
    return this.queue.list();
  }

  async get(id: string): Promise<FineTuneJobView> {
    const job = ID_RE.test(id) ? await this.queue.get(id) : null;
    if (!job)
      throw new ApiError(HttpStatus.NOT_FOUND, 'FINE_TUNE_NOT_FOUND', `fine-tune ${id} not found`);
    if (job.status === 'succeeded') await this.catchUp(id);
    return job;
  }

  /**
   * Read-your-writes: a client that sees "succeeded" goes on to use the new model version, but
   * the status comes from the queue while the rescan it triggers follows an event that crosses
   * Redis, so it can arrive later. The first read of a succeeded job waits for a scan that began
   * after it (ModelCatalog.rescan), once per job in this process.
   */
  private async catchUp(id: string): Promise<void> {
    if (this.caughtUp.has(id)) return;
    try {
      await this.models.rescan();
    } catch (e) {
      this.logger.warn(`rescan for job ${id}: ${(e as Error).message}`);
      return; // not caught up: the next read tries again
    }
    if (this.caughtUp.size >= 10_000) this.caughtUp.clear();
    this.caughtUp.add(id);
  }

  async cancel(id: string): Promise<FineTuneJobView> {
    const job = await this.get(id);
    if (TERMINAL.has(job.status))
      throw new ApiError(
        HttpStatus.CONFLICT,
        'FINE_TUNE_FINISHED',
        `fine-tune ${id} already ${job.status}`,
      );
    return (await this.queue.cancel(id)) ?? job;
  }

  /**
   * This job's events: a snapshot first, then live events, ending after a terminal status — or
   * when the server starts draining for shutdown (an open stream would otherwise hold the drain
   * for the whole grace period; clients reconnect to another replica).
   */
  async events(id: string): Promise<Observable<SseMessage>> {
    await this.get(id); // 404 before the stream starts
    return new Observable<SseMessage>((sub) => {
      const drainCheck = setInterval(() => {
        if (this.health?.isDraining) sub.complete();
      }, 200);
      const done = (e: FineTuneEvent) => e.type === 'status' && TERMINAL.has(e.status);
      // Live events are subscribed to before the snapshot is read (none is missed), but held back
      // until the snapshot has gone out, so a stream always starts with it.
      let held: FineTuneEvent[] | null = [];
      const forward = (e: FineTuneEvent) => {
        sub.next({ type: e.type, data: e });
        if (done(e)) sub.complete();
      };
      const live = this.queue.events.pipe(filter((e) => e.jobId === id)).subscribe({
        next: (e) => (held ? held.push(e) : forward(e)),
        complete: () => sub.complete(),
      });
      this.queue.get(id).then(
        (view) => {
          if (!view || sub.closed) return;
          sub.next({ type: 'snapshot', data: view });
          if (TERMINAL.has(view.status)) return sub.complete();
          const backlog = held ?? [];
          held = null;
          for (const e of backlog) if (!sub.closed) forward(e);
        },
        (err) => sub.error(err),
      );
      return () => {
        clearInterval(drainCheck);
        live.unsubscribe();
      };
    });
  }

  /** Live events of every job (GraphQL subscription). */
  get allEvents(): Observable<FineTuneEvent> {
    return this.queue.events;
  }
}
