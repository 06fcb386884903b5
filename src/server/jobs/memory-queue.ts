/**
 * The in-process queue used without REDIS_URL: same API as the bull queue, one job at a time, jobs
 * kept in memory. SINGLE NODE ONLY: other replicas do not see these jobs, and jobs queued or
 * running when the process exits are lost (the checkpoints on disk remain, but nothing re-queues
 * them). Use Redis for anything beyond one process. Like bull (removeOnComplete/removeOnFail: N), it
 * keeps the newest JOBS_KEEP succeeded and the newest JOBS_KEEP failed or cancelled jobs.
 */
import { Logger } from '@nestjs/common';
import { Subject } from 'rxjs';
import type { FineTuneProgress } from '../../prg/training/job-api';
import {
  checkHandlers,
  FineTuneEvent,
  FineTuneJobData,
  FineTuneJobView,
  JobCancelledError,
  JobHandler,
  JobInterruptedError,
  JobName,
  JobQueue,
} from './fine-tune.types';
import { FineTuneStatus, TERMINAL } from './fine-tune-status';
import { removeJobFiles } from './job-files';
import { JobsConfig } from './jobs.config';
import { endRun, recordProgress, startRun } from './progress';
import { ownerTag } from '../common/stale-temp';

interface Entry {
  data: FineTuneJobData;
  view: FineTuneJobView;
  abort?: AbortController;
}

export class MemoryJobQueue implements JobQueue {
  readonly kind = 'memory' as const;
  private readonly logger = new Logger('MemoryJobQueue');
  private readonly jobs = new Map<string, Entry>();
  /** Finished job ids, oldest first, per bull set: 'completed' (succeeded), 'failed' (+ cancelled). */
  private readonly finished = { completed: [] as string[], failed: [] as string[] };
  private readonly pending: string[] = [];
  private handlers: Record<JobName, JobHandler> | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private readonly subject = new Subject<FineTuneEvent>();
  readonly events = this.subject.asObservable();

  constructor(private readonly config: Pick<JobsConfig, 'keepJobs'>) {}

  async add(data: FineTuneJobData): Promise<FineTuneJobView> {
    const view: FineTuneJobView = {
      id: data.id,
      status: 'queued',
      model: data.model,
      dataset: data.dataset,
      evalDataset: data.evalDataset ?? null,
      oodDataset: data.oodDataset ?? null,
      hyperparameters: data.hyperparameters,
      progress: null,
      history: [],
      result: null,
      error: null,
      attempts: 0,
      runs: [],
      createdAt: data.createdAt,
      startedAt: null,
      finishedAt: null,
    };
    this.jobs.set(data.id, { data, view });
    this.pending.push(data.id);
    this.status(view, 'queued');
    this.pump();
    return structuredClone(view);
  }

  async get(id: string): Promise<FineTuneJobView | null> {
    const e = this.jobs.get(id);
    return e ? structuredClone(e.view) : null;
  }

  async unfinished(owner: string): Promise<number> {
    return [...this.jobs.values()].filter(
      (e) => (e.data.owner ?? 'anonymous') === owner && !TERMINAL.has(e.view.status),
    ).length;
  }

  async list(): Promise<FineTuneJobView[]> {
    return [...this.jobs.values()]
      .map((e) => structuredClone(e.view))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  }

  async cancel(id: string): Promise<FineTuneJobView | null> {
    const e = this.jobs.get(id);
    if (!e) return null;
    if (e.view.status === 'queued') {
      this.pending.splice(this.pending.indexOf(id), 1);
      await this.finish(e, 'cancelled');
    } else if (e.view.status === 'running') {
      this.status(e.view, 'cancelling');
      e.abort?.abort(new JobCancelledError());
    }
    return structuredClone(e.view);
  }

  async counts(): Promise<Record<string, number>> {
    const c: Record<string, number> = { waiting: 0, active: 0, completed: 0, failed: 0 };
    for (const e of this.jobs.values()) {
      const s = e.view.status;
      if (s === 'queued') c.waiting++;
      else if (s === 'running' || s === 'cancelling') c.active++;
      else if (s === 'succeeded') c.completed++;
      else c.failed++;
    }
    return c;
  }

  async startWorker(handlers: Record<JobName, JobHandler>): Promise<void> {
    checkHandlers(handlers);
    this.handlers = handlers;
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.jobs.values())
      if (e.view.status === 'running') e.abort?.abort(new JobInterruptedError());
    await this.running;
    this.subject.complete();
  }

  private status(view: FineTuneJobView, status: FineTuneStatus, error?: string): void {
    view.status = status;
    this.subject.next({
      type: 'status',
      jobId: view.id,
      status,
      ...(error ? { error } : {}),
      at: new Date().toISOString(),
    });
  }

  /**
   * Marks a job finished and drops the oldest finished jobs of its kind beyond JOBS_KEEP, with their
   * files, before reporting the new status: whoever sees it finished no longer sees what it pushed
   * out. Queued and running jobs are never in `finished`, so never dropped.
   */
  private async finish(
    e: Entry,
    status: 'succeeded' | 'failed' | 'cancelled',
    error?: string,
  ): Promise<void> {
    e.view.finishedAt = new Date().toISOString();
    const ids = this.finished[status === 'succeeded' ? 'completed' : 'failed'];
    ids.push(e.view.id);
    while (ids.length > this.config.keepJobs) {
      const old = this.jobs.get(ids.shift()!)!;
      this.jobs.delete(old.view.id);
      await removeJobFiles(old.data).catch((err: Error) =>
        this.logger.warn(`job ${old.view.id}: removing its files: ${err.message}`),
      );
    }
    this.status(e.view, status, error);
  }

  private pump(): void {
    if (!this.handlers || this.running || this.closed) return;
    const id = this.pending.shift();
    if (id === undefined) return;
    this.running = this.run(this.jobs.get(id)!).finally(() => {
      this.running = null;
      this.pump();
    });
  }

  private async run(e: Entry): Promise<void> {
    const handler = this.handlers!['fine-tune'];
    const abort = new AbortController();
    e.abort = abort;
    e.view.attempts++;
    e.view.runs = startRun(e.view.runs, ownerTag());
    e.view.startedAt ??= new Date().toISOString();
    e.view.error = null;
    this.status(e.view, 'running');
    try {
      const result = await handler({
        data: e.data,
        signal: abort.signal,
        attempt: e.view.attempts,
        progress: async (p: FineTuneProgress) => {
          const stored = recordProgress({ latest: e.view.progress, history: e.view.history }, p);
          e.view.progress = stored.latest;
          e.view.history = stored.history;
          this.subject.next({
            type: 'progress',
            jobId: e.view.id,
            progress: p,
            at: new Date().toISOString(),
          });
        },
      });
      e.view.result = result;
      e.view.runs = endRun(e.view.runs, 'succeeded');
      await this.finish(e, 'succeeded');
    } catch (err) {
      const outcome =
        err instanceof JobInterruptedError
          ? 'interrupted'
          : err instanceof JobCancelledError
            ? 'cancelled'
            : 'failed';
      e.view.runs = endRun(e.view.runs, outcome, (err as Error).message);
      if (err instanceof JobInterruptedError) {
        // Process shutting down: nothing will run it again in this process (see header).
        e.view.error = err.message;
        this.status(e.view, 'queued');
        return;
      }
      if (err instanceof JobCancelledError) await this.finish(e, 'cancelled');
      else {
        e.view.error = (err as Error).message;
        await this.finish(e, 'failed', e.view.error);
      }
    } finally {
      e.abort = undefined;
    }
  }
}
