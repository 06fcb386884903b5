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
  /**
   * True while more items for this batcher are on their way (requests already accepted whose
   * images are still decoding). When maxWaitMs has passed and this holds, the run waits a little
   * longer, up to `maxHoldMs` in all, so the batch is not cut just before they arrive.
   */
  incoming?: () => boolean;
  /**
   * Cap on the total wait from the first item while `incoming` holds. Default: 4 × maxWaitMs plus
   * the duration of the last run: runs block the event loop, so decodes finishing during a run
   * are only seen after it, and waiting about one run for them trades ≤ 2× latency for full
   * batches.
   */
  maxHoldMs?: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

/** Runs async tasks at most `concurrency` at a time, FIFO. */
export class Executor {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly concurrency = 1) {}

  get depth(): number {
    return this.running + this.waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

export class DynamicBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;
  /** When the oldest waiting item arrived. */
  private since = 0;
  private lastRunMs = 0;

  constructor(
    /** Runs a batch; must return one output per item, in order. */
    /**
     * Runs a batch; returns one output per item, in order, or one promise per item so items
     * finished early (a first chunk) are answered before the rest of the run.
     */
    private readonly runBatch: (items: I[]) => Promise<(O | Promise<O>)[]>,
    private readonly opts: BatchOptions,
    private readonly executor: Executor = new Executor(),
  ) {}

  /** Items waiting (not yet in a run). */
  get pending(): number {
    return this.queue.length;
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      if (this.queue.length === 0) this.since = performance.now();
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.opts.maxBatch) this.schedule();
      else if (this.queue.length === 1 && this.opts.incoming && !this.opts.incoming())
        // Nothing else is on its way (e.g. a serial client): waiting maxWaitMs would only add latency.
        this.expire();
      else this.arm();
    });
  }

  private arm(): void {
    if (this.timer === null && !this.scheduled)
      this.timer = setTimeout(() => this.expire(), this.opts.maxWaitMs);
  }

  /**
   * maxWaitMs is over. ORT runs block the event loop, so after a run the expired timer fires
   * before the requests that arrived meanwhile are read: setImmediate lets the poll phase read
   * them first, and while accepted requests are still decoding the run is held a little longer.
   */
  private expire(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    setImmediate(() => {
      const hold = this.opts.maxHoldMs ?? 4 * this.opts.maxWaitMs + this.lastRunMs;
      if (
        this.queue.length > 0 &&
        this.queue.length < this.opts.maxBatch &&
        this.opts.incoming?.() &&
        performance.now() - this.since < hold
      ) {
        this.timer = setTimeout(() => this.expire(), 1);
        return;
      }
      this.schedule();
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
    if (this.queue.length > 0) this.since = performance.now();
    if (this.queue.length >= this.opts.maxBatch) this.schedule();
    else if (this.queue.length > 0) this.arm();
    if (batch.length === 0) return;
    const started = performance.now();
    try {
      const out = await this.runBatch(batch.map((p) => p.item));
      if (out.length !== batch.length)
        throw new Error(`batch returned ${out.length} outputs for ${batch.length} items`);
      for (const [i, p] of batch.entries()) void Promise.resolve(out[i]).then(p.resolve, p.reject);
      // The executor slot is held until the whole run is done.
      await Promise.allSettled(out);
    } catch (e) {
      batch.forEach((p) => p.reject(e));
    }
    this.lastRunMs = performance.now() - started;
  }
}
