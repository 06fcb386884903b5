/**
 * Fine-tune jobs on bull (Redis). Any number of API replicas and workers share one queue:
 * - job state, progress and results live in Redis (bull's job hash), so every replica reports the
 *   same job the same way;
 * - events (status changes, progress) go over a Redis pub/sub channel, so SSE clients of any
 *   replica see every event;
 * - cancel sets a Redis key (seen by a worker that picks the job up later) and publishes on a
 *   channel (seen by the worker running it, which aborts within one step);
 * - a worker that dies stops renewing its job lock; after lockDuration another worker's stalled
 *   check moves the job back to the wait list and it restarts from its last checkpoint;
 * - a worker that shuts down gracefully aborts its job and lets bull retry it at once (attempts are
 *   "returns to the queue"; genuine failures and cancels are discarded, never retried);
 * - bull itself keeps only the newest JOBS_KEEP completed and the newest JOBS_KEEP failed (and
 *   cancelled) jobs; the worker that finished a job removes the files of the jobs that pushed out.
 */
import { Logger } from '@nestjs/common';
import Bull from 'bull';
import Redis from 'ioredis';
import { Subject } from 'rxjs';
import type { FineTuneProgress } from '../../prg/training/job-api';
import {
  checkHandlers,
  FineTuneEvent,
  FineTuneJobData,
  FineTuneJobView,
  FineTuneResultView,
  JobCancelledError,
  JobHandler,
  JobInterruptedError,
  JobName,
  JobQueue,
  StoredProgress,
} from './fine-tune.types';
import { FineTuneStatus } from './fine-tune-status';
import { removeJobFiles } from './job-files';
import { JobsConfig } from './jobs.config';
import { endRun, recordProgress, startRun } from './progress';
import { ownerTag } from '../common/stale-temp';
import type { JobRunOutcome } from './fine-tune.dto';

export const QUEUE_NAME = 'fine-tunes';
/** Times a job may be returned to the queue by graceful shutdowns. */
const MAX_ATTEMPTS = 50;
const CANCEL_TTL_S = 7 * 24 * 3600;
const LIST_LIMIT = 500;

interface BullProgress extends StoredProgress {
  attempts?: number;
}

export class BullJobQueue implements JobQueue {
  readonly kind = 'bull' as const;
  private readonly logger = new Logger('BullJobQueue');
  private readonly queue: Bull.Queue<FineTuneJobData>;
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly subject = new Subject<FineTuneEvent>();
  readonly events = this.subject.asObservable();
  private readonly active = new Map<string, AbortController>();
  /** Jobs running in this process, by id (see run). */
  private readonly running = new Map<string, Promise<FineTuneResultView>>();
  /** Per job about to finish here: the jobs bull will drop from its set when it does (JOBS_KEEP). */
  private readonly pushedOut = new Map<string, FineTuneJobData[]>();
  private readonly eventsChannel: string;
  private readonly cancelChannel: string;
  private working = false;

  constructor(private readonly config: JobsConfig) {
    if (!config.redisUrl) throw new Error('BullJobQueue needs REDIS_URL');
    this.queue = new Bull<FineTuneJobData>(QUEUE_NAME, config.redisUrl, {
      prefix: config.prefix,
      settings: {
        lockDuration: config.lockDurationMs,
        lockRenewTime: Math.floor(config.lockDurationMs / 2),
        stalledInterval: config.stalledIntervalMs,
        maxStalledCount: config.maxStalledCount,
      },
    });
    this.eventsChannel = `${config.prefix}:${QUEUE_NAME}:events`;
    this.cancelChannel = `${config.prefix}:${QUEUE_NAME}:cancel`;
    this.pub = new Redis(config.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 3 });
    this.sub = new Redis(config.redisUrl, { lazyConnect: false });
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.eventsChannel) {
        try {
          this.subject.next(JSON.parse(message) as FineTuneEvent);
        } catch {
          /* not ours */
        }
      } else if (channel === this.cancelChannel) {
        this.active.get(message)?.abort(new JobCancelledError());
      }
    });
    this.queue.on('error', (e) => this.logger.error(`queue: ${e.message}`));
  }

  /** Subscribes to the events/cancel channels; resolves once Redis confirmed. */
  async ready(): Promise<void> {
    await this.sub.subscribe(this.eventsChannel, this.cancelChannel);
    await this.queue.isReady();
  }

  private cancelKey(id: string): string {
    return `${this.config.prefix}:${QUEUE_NAME}:cancel:${id}`;
  }

  private async publish(e: FineTuneEvent): Promise<void> {
    await this.pub.publish(this.eventsChannel, JSON.stringify(e));
  }

  private statusEvent(jobId: string, status: FineTuneStatus, error?: string): FineTuneEvent {
    return {
      type: 'status',
      jobId,
      status,
      ...(error ? { error } : {}),
      at: new Date().toISOString(),
    };
  }

  async add(data: FineTuneJobData): Promise<FineTuneJobView> {
    const job = await this.queue.add('fine-tune', data, {
      jobId: data.id,
      attempts: MAX_ATTEMPTS,
      // Bull trims the completed / failed set to the newest N when a job joins it (jobs added
      // before a change of JOBS_KEEP trim with the value they were added with).
      removeOnComplete: this.config.keepJobs,
      removeOnFail: this.config.keepJobs,
    });
    await this.publish(this.statusEvent(data.id, 'queued'));
    return this.view(job);
  }

  async get(id: string): Promise<FineTuneJobView | null> {
    const job = await this.queue.getJob(id);
    return job ? this.view(job) : null;
  }

  async unfinished(owner: string): Promise<number> {
    const jobs = await this.queue.getJobs(['waiting', 'active', 'delayed', 'paused']);
    return jobs.filter((j) => j && (j.data.owner ?? 'anonymous') === owner).length;
  }

  async list(): Promise<FineTuneJobView[]> {
    const jobs = await this.queue.getJobs(
      ['waiting', 'active', 'delayed', 'paused', 'completed', 'failed'],
      0,
      LIST_LIMIT,
    );
    const views = await Promise.all(jobs.filter(Boolean).map((j) => this.view(j)));
    return views.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  }

  async cancel(id: string): Promise<FineTuneJobView | null> {
    const job = await this.queue.getJob(id);
    if (!job) return null;
    await this.pub.set(this.cancelKey(id), '1', 'EX', CANCEL_TTL_S);
    await this.pub.publish(this.cancelChannel, id);
    const view = await this.view(job);
    if (view.status === 'cancelled' || view.status === 'cancelling')
      await this.publish(this.statusEvent(id, view.status));
    return view;
  }

  async counts(): Promise<Record<string, number>> {
    return { ...(await this.queue.getJobCounts()) };
  }

  private async view(fetched: Bull.Job<FineTuneJobData>): Promise<FineTuneJobView> {
    let job = fetched;
    const [state, cancelled] = await Promise.all([
      job.getState(),
      this.pub.exists(this.cancelKey(String(job.id))),
    ]);
    // The hash was read before the state: a job that finished in between lacks its result.
    if ((state === 'completed' || state === 'failed') && !job.finishedOn)
      job = (await this.queue.getJob(job.id)) ?? job;
    const stored = (job.progress() as BullProgress | number | undefined) ?? null;
    const p: BullProgress =
      stored && typeof stored === 'object' ? stored : { latest: null, history: [] };
    let status: FineTuneStatus;
    switch (state) {
      case 'completed':
        status = 'succeeded';
        break;
      case 'failed':
        status = job.failedReason === 'cancelled' ? 'cancelled' : 'failed';
        break;
      case 'active':
        status = cancelled ? 'cancelling' : 'running';
        break;
      default:
        // waiting, delayed, paused; a flagged job is dropped the moment a worker takes it.
        status = cancelled ? 'cancelled' : 'queued';
    }
    const d = job.data;
    const finished = status === 'succeeded' || status === 'failed';
    return {
      id: String(job.id),
      status,
      model: d.model,
      dataset: d.dataset,
      evalDataset: d.evalDataset ?? null,
      oodDataset: d.oodDataset ?? null,
      hyperparameters: d.hyperparameters,
      progress: p.latest ?? null,
      history: p.history ?? [],
      result: state === 'completed' ? (job.returnvalue as FineTuneResultView) : null,
      error: status === 'failed' ? (job.failedReason ?? 'failed') : null,
      attempts: p.attempts ?? 0,
      runs: p.runs ?? [],
      createdAt: d.createdAt,
      startedAt: p.startedAt ?? null,
      finishedAt:
        (finished || status === 'cancelled') && job.finishedOn
          ? new Date(job.finishedOn).toISOString()
          : null,
    };
  }

  async startWorker(handlers: Record<JobName, JobHandler>): Promise<void> {
    checkHandlers(handlers);
    this.working = true;
    this.queue.on('completed', (job: Bull.Job<FineTuneJobData>) => {
      void this.publish(this.statusEvent(String(job.id), 'succeeded'));
      void this.removePushedOut(String(job.id));
    });
    this.queue.on('failed', (job: Bull.Job<FineTuneJobData>, err: Error) => {
      // Not finished: bull retries it (graceful shutdown returned it to the queue).
      if (!job.finishedOn) {
        void this.publish(this.statusEvent(String(job.id), 'queued', err.message));
        return;
      }
      void this.removePushedOut(String(job.id));
      const cancelled = err.message === 'cancelled';
      void this.publish(
        this.statusEvent(
          String(job.id),
          cancelled ? 'cancelled' : 'failed',
          cancelled ? undefined : err.message,
        ),
      );
    });
    this.queue.on('stalled', (job: Bull.Job<FineTuneJobData>) => {
      this.logger.warn(`job ${job.id} stalled (its worker stopped); back in the queue`);
      void this.publish(this.statusEvent(String(job.id), 'queued', 'worker stopped; requeued'));
    });
    // One handler per job name (checkHandlers), one job at a time per worker process.
    for (const name of Object.keys(handlers) as JobName[])
      void this.queue.process(name, 1, (job) => this.run(job, handlers[name]));
  }

  /**
   * Runs a job here, unless this process runs it already: when a long training step kept the
   * event loop from renewing the job's lock in time, bull's stalled check hands the job back
   * (possibly to this same worker) while it is still running. A second run here would train the
   * same job twice at once; it joins the running one instead. (Across workers, JOB_LOCK_MS must
   * exceed the longest event-loop stall of a worker: docs/reliability.md.)
   */
  private run(job: Bull.Job<FineTuneJobData>, handler: JobHandler): Promise<FineTuneResultView> {
    const id = String(job.id);
    const running = this.running.get(id);
    if (running) {
      this.logger.warn(
        `job ${id} handed back while still running here (late lock renewal); joining it`,
      );
      return running;
    }
    const p = this.runOnce(job, handler).finally(() => this.running.delete(id));
    this.running.set(id, p);
    return p;
  }

  private async runOnce(
    job: Bull.Job<FineTuneJobData>,
    handler: JobHandler,
  ): Promise<FineTuneResultView> {
    const id = String(job.id);
    const abort = new AbortController();
    this.active.set(id, abort);
    this.pushedOut.delete(id); // left by an earlier attempt that did not finish
    try {
      if (await this.pub.exists(this.cancelKey(id))) throw new JobCancelledError();
      const prev = job.progress() as BullProgress | number | null;
      let stored: BullProgress =
        prev && typeof prev === 'object' ? { ...prev } : { latest: null, history: [] };
      stored.attempts = (stored.attempts ?? 0) + 1;
      stored.startedAt ??= new Date().toISOString();
      stored.runs = startRun(stored.runs ?? [], ownerTag());
      await job.progress(stored);
      await this.publish(this.statusEvent(id, 'running'));
      // One progress write in flight at a time; reports arriving meanwhile are folded into the next.
      let saving: Promise<void> | null = null;
      let again = false;
      const saveProgress = (): void => {
        if (saving) {
          again = true;
          return;
        }
        saving = (async () => {
          do {
            again = false;
            await job.progress(stored).catch((e: Error) => {
              this.logger.warn(
                `job ${id}: saving progress: ${e.message} (retried with the next report)`,
              );
            });
          } while (again);
        })().finally(() => (saving = null));
      };
      const saved = (): Promise<void> => saving ?? Promise.resolve();
      const result = await handler({
        data: job.data,
        signal: abort.signal,
        attempt: stored.attempts,
        // Training never waits on Redis: while it is away (a restart, a failover) the job goes
        // on, and the latest state is written once it answers again.
        progress: async (p: FineTuneProgress) => {
          stored = { ...recordProgress(stored, p), attempts: stored.attempts };
          saveProgress();
          this.publish({
            type: 'progress',
            jobId: id,
            progress: p,
            at: new Date().toISOString(),
          }).catch(() => undefined);
        },
      });
      stored = { ...stored, runs: endRun(stored.runs ?? [], 'succeeded') };
      await saved();
      await job.progress(stored);
      await this.notePushedOut(id, 'completed');
      return result;
    } catch (e) {
      const reason = abort.signal.aborted ? (abort.signal.reason as unknown) : e;
      const outcome =
        reason instanceof JobInterruptedError
          ? 'interrupted'
          : reason instanceof JobCancelledError
            ? 'cancelled'
            : 'failed';
      await this.closeRun(job, outcome, (reason as Error).message);
      if (reason instanceof JobInterruptedError) throw reason; // bull retries: back to the queue
      await job.discard();
      await this.notePushedOut(id, 'failed');
      if (reason instanceof JobCancelledError) throw new Error('cancelled', { cause: e });
      throw e;
    } finally {
      this.active.delete(id);
    }
  }

  /** Records how the current run of `job` ended (best effort: Redis may be the reason it ended). */
  private async closeRun(
    job: Bull.Job<FineTuneJobData>,
    outcome: JobRunOutcome,
    detail: string,
  ): Promise<void> {
    try {
      const fresh = (await this.queue.getJob(job.id)) ?? job;
      const p = fresh.progress() as BullProgress | number | null;
      if (!p || typeof p !== 'object') return;
      await job.progress({ ...p, runs: endRun(p.runs ?? [], outcome, detail) });
    } catch (e) {
      this.logger.warn(`job ${job.id}: recording its run's end: ${(e as Error).message}`);
    }
  }

  /**
   * Just before job `id` joins `set`: the jobs bull will then drop (every one from rank JOBS_KEEP - 1,
   * newest first). Their data is read now because bull deletes it with them.
   */
  private async notePushedOut(id: string, set: 'completed' | 'failed'): Promise<void> {
    try {
      const jobs = await this.queue.getJobs([set], this.config.keepJobs - 1, -1, false);
      const data = jobs.filter(Boolean).map((j) => j.data);
      if (data.length) this.pushedOut.set(id, data);
    } catch (e) {
      this.logger.warn(`job ${id}: listing the jobs it pushes out: ${(e as Error).message}`);
    }
  }

  /**
   * Once job `id` finished: the files of the jobs it pushed out. Only of those really gone from
   * Redis, so the files of a job still listed are never removed (e.g. when finishing failed).
   */
  private async removePushedOut(id: string): Promise<void> {
    const data = this.pushedOut.get(id) ?? [];
    this.pushedOut.delete(id);
    for (const d of data)
      try {
        if (!(await this.queue.getJob(d.id))) await removeJobFiles(d);
      } catch (e) {
        this.logger.warn(`job ${d.id}: removing its files: ${(e as Error).message}`);
      }
  }

  async close(): Promise<void> {
    if (this.working) {
      // Take no new job here, interrupt the running one (it goes back to the queue), then close.
      await this.queue.pause(true, true).catch(() => undefined);
      for (const a of this.active.values()) a.abort(new JobInterruptedError());
    }
    await this.queue.close();
    this.subject.complete();
    this.sub.disconnect();
    await this.pub.quit().catch(() => undefined);
  }

  /** Tests: remove every key of this queue and prefix. */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
    const keys = await this.pub.keys(`${this.config.prefix}:${QUEUE_NAME}:*`);
    if (keys.length) await this.pub.del(...keys);
  }
}
