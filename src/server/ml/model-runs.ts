/**
 * Running models: dynamic batching per (model, operation, settings) into runs of at most the
 * model's run size, an executor per model (runs of one model serialised in the main thread, N + 1
 * at once with N inference workers), and one summary of failures: a failed run is logged with the
 * model, operation, batch shape and settings, and answered as one 500 INFERENCE_FAILED.
 */
import { imageInput } from '../../prg/manifest';
import { HttpStatus, Logger } from '@nestjs/common';
import { PrgModelApi } from '../../prg/inference-api';
import { ApiError } from '../common/errors';
import { InFlightRequests } from '../common/in-flight';
import { ServerConfig } from '../config/config';
import { MetricsService } from '../metrics/metrics.service';
import { DynamicBatcher, Executor } from './batcher';

export type Op = 'classify' | 'features' | 'ood' | 'infer';

/** A batched run: one answer per image, in order. */
export type RunFn<R> = (m: PrgModelApi, batch: Float32Array, n: number) => Promise<R[]>;

function concat(items: Float32Array[]): Float32Array {
  const out = new Float32Array(items.reduce((s, x) => s + x.length, 0));
  let o = 0;
  for (const x of items) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

export class ModelRuns {
  private readonly logger = new Logger('ModelRuns');
  private readonly executors = new Map<string, Executor>();
  private readonly batchers = new Map<string, DynamicBatcher<Float32Array, unknown>>();
  /** Per model: requests accepted whose images are still decoding (they will submit soon). */
  private readonly incoming = new Map<string, number>();
  /** Requests (all models) that reached the batcher and have not been answered yet. */
  private active = 0;

  constructor(
    private readonly config: ServerConfig,
    private readonly metrics: MetricsService,
    private readonly inFlight: InFlightRequests,
    /** The largest batch handed to model `id` in one run. */
    private readonly runSize: (id: string) => number,
  ) {}

  /**
   * More work for model `id` is on its way: a request for it is decoding, or an HTTP request is
   * in flight that has not reached the batcher yet (still being received or parsed).
   */
  private moreComing(id: string): boolean {
    return (this.incoming.get(id) ?? 0) > 0 || this.inFlight.count > this.active;
  }

  executor(id: string): Executor {
    let e = this.executors.get(id);
    // In the main thread: one run at a time (ORT blocks it and already uses every core). With N
    // worker threads: N + 1, so the next batch is queued in a worker while the current one runs.
    const n = this.config.inferenceWorkers;
    if (!e) this.executors.set(id, (e = new Executor(n > 0 ? n + 1 : 1)));
    return e;
  }

  /**
   * Prepare (decode the images, load the model; counted as incoming for batching meanwhile), then
   * hand each image to the batcher of (model, op, settings). A run takes up to
   * the model's run size; more waiting images start further runs as the executor allows, and
   * each run's requests are answered as soon as it is done.
   */
  async submit<R>(
    id: string,
    op: Op,
    opts: object,
    prepare: () => Promise<[Float32Array[], PrgModelApi]>,
    run: RunFn<R>,
  ): Promise<R[]> {
    this.incoming.set(id, (this.incoming.get(id) ?? 0) + 1);
    let images: Float32Array[];
    let m: PrgModelApi;
    try {
      [images, m] = await prepare();
    } finally {
      this.incoming.set(id, this.incoming.get(id)! - 1);
    }
    const b = this.batcher(id, op, opts, m, run);
    this.metrics.inferencePending.inc({ model: id }, images.length);
    this.active++;
    try {
      return await Promise.all(images.map((x) => b.submit(x)));
    } finally {
      this.active--;
    }
  }

  private batcher<R>(
    id: string,
    op: Op,
    opts: object,
    m: PrgModelApi,
    run: RunFn<R>,
  ): DynamicBatcher<Float32Array, R> {
    const key = `${id}|${op}|${JSON.stringify(opts, Object.keys(opts).sort())}`;
    let b = this.batchers.get(key) as DynamicBatcher<Float32Array, R> | undefined;
    if (b) return b;
    if (this.batchers.size > 1000)
      for (const [k, x] of this.batchers) if (x.pending === 0) this.batchers.delete(k);
    const { channels: c, height: h, width: w } = imageInput(m.manifest);
    const runSize = () => this.runSize(id);
    b = new DynamicBatcher<Float32Array, R>(
      async (items) => {
        this.metrics.inferencePending.dec({ model: id }, items.length);
        this.metrics.batchSize.observe({ model: id, op }, items.length);
        const end = this.metrics.inferenceDuration.startTimer({ model: id, op });
        try {
          return await this.guard(id, op, [items.length, c, h, w], opts, () =>
            run(m, concat(items), items.length),
          );
        } finally {
          end();
        }
      },
      {
        // Read at every run: warm-up may tune the run size after the batcher exists.
        get maxBatch() {
          return runSize();
        },
        maxWaitMs: this.config.maxWaitMs,
        incoming: () => this.moreComing(id),
      },
      this.executor(id),
    );
    this.batchers.set(key, b as DynamicBatcher<Float32Array, unknown>);
    return b;
  }

  async guard<T>(
    id: string,
    op: string,
    shape: number[],
    opts: object,
    fn: () => Promise<T>,
  ): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ApiError) throw e;
      this.metrics.inferenceErrors.inc({ model: id, op });
      const msg = (e as Error).message;
      this.logger.error(
        `${op} on ${id} failed: input float32[${shape.join(',')}] opts ${JSON.stringify(opts)}: ${(e as Error).stack ?? msg}`,
      );
      throw new ApiError(
        HttpStatus.INTERNAL_SERVER_ERROR,
        'INFERENCE_FAILED',
        `${op} on ${id} failed for input [${shape.join(', ')}]: ${msg.split('\n')[0]}`,
      );
    }
  }
}
