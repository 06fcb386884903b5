/**
 * Dynamic batching: items submitted under the same key (model + operation + settings) are
 * coalesced into one run of up to `maxBatch` items. A run starts when `maxBatch` items wait or
 * `maxWaitMs` after the first one arrived, and only when the model's executor is free: runs of one
 * model are serialised (ORT already uses every core for one run), so items that arrive while a
 * run is busy join the next one instead of competing for CPU.
 */

export interface BatchOptions {
  maxBatch: number;
  maxWaitMs: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

/** Serialises async tasks (one at a time, FIFO). */
export class Executor {
  private tail: Promise<unknown> = Promise.resolve();
  private queued = 0;

  get depth(): number {
    return this.queued;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    this.queued++;
    const p = this.tail.then(task, task);
    this.tail = p.then(
      () => this.queued--,
      () => this.queued--,
    );
    return p;
  }
}

export class DynamicBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;

  constructor(
    /** Runs a batch; must return one output per item, in order. */
    private readonly runBatch: (items: I[]) => Promise<O[]>,
    private readonly opts: BatchOptions,
    private readonly executor: Executor = new Executor(),
  ) {}

  /** Items waiting (not yet in a run). */
  get pending(): number {
    return this.queue.length;
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.opts.maxBatch) this.schedule();
      else if (this.timer === null && !this.scheduled)
        this.timer = setTimeout(() => this.schedule(), this.opts.maxWaitMs);
    });
  }

  private schedule(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    void this.executor.run(() => this.drain());
  }

  /** Takes up to maxBatch items at the moment the executor is free, so late arrivals join. */
  private async drain(): Promise<void> {
    this.scheduled = false;
    const batch = this.queue.splice(0, this.opts.maxBatch);
    if (this.queue.length >= this.opts.maxBatch) this.schedule();
    else if (this.queue.length > 0 && this.timer === null)
      this.timer = setTimeout(() => this.schedule(), this.opts.maxWaitMs);
    if (batch.length === 0) return;
    try {
      const out = await this.runBatch(batch.map((p) => p.item));
      if (out.length !== batch.length)
        throw new Error(`batch returned ${out.length} outputs for ${batch.length} items`);
      batch.forEach((p, i) => p.resolve(out[i]));
    } catch (e) {
      batch.forEach((p) => p.reject(e));
    }
  }
}
