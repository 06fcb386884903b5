/**
 * The in-process queue used without REDIS_URL: same API as the bull queue, one job at a time, jobs
 * kept in memory. SINGLE NODE ONLY: other replicas do not see these jobs, and jobs queued or
 * running when the process exits are lost (the checkpoints on disk remain, but nothing re-queues
 * them). Use Redis for anything beyond one process.
 */
import { Subject } from 'rxjs';
import type { FineTuneProgress } from '../../prg/training/job-api';
import {
  checkHandlers,
  FineTuneEvent,
  FineTuneJobData,
  FineTuneJobView,
  FineTuneStatus,
  JobCancelledError,
  JobHandler,
  JobInterruptedError,
  JobName,
  JobQueue,
} from './fine-tune.types';
import { recordProgress } from './progress';

interface Entry {
  data: FineTuneJobData;
  view: FineTuneJobView;
  abort?: AbortController;
}

export class MemoryJobQueue implements JobQueue {
  readonly kind = 'memory' as const;
  private readonly jobs = new Map<string, Entry>();
  private readonly pending: string[] = [];
  private handlers: Record<JobName, JobHandler> | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private readonly subject = new Subject<FineTuneEvent>();
  readonly events = this.subject.asObservable();

  async add(data: FineTuneJobData): Promise<FineTuneJobView> {
    const view: FineTuneJobView = {
      id: data.id,
      status: 'queued',
      model: data.model,
      dataset: data.dataset,
      evalDataset: data.evalDataset ?? null,
      hyperparameters: data.hyperparameters,
      progress: null,
      history: [],
      result: null,
      error: null,
      attempts: 0,
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
      e.view.finishedAt = new Date().toISOString();
      this.status(e.view, 'cancelled');
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
      e.view.finishedAt = new Date().toISOString();
      this.status(e.view, 'succeeded');
    } catch (err) {
      if (err instanceof JobInterruptedError) {
        // Process shutting down: nothing will run it again in this process (see header).
        e.view.error = err.message;
        this.status(e.view, 'queued');
        return;
      }
      e.view.finishedAt = new Date().toISOString();
      if (err instanceof JobCancelledError) this.status(e.view, 'cancelled');
      else {
        e.view.error = (err as Error).message;
        this.status(e.view, 'failed', e.view.error);
      }
    } finally {
      e.abort = undefined;
    }
  }
}
