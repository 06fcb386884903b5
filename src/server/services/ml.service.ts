/**
 * Every call into a PRG model goes through here: requests are coalesced by dynamic batching
 * (same model, operation and settings → one ORT run of up to MAX_BATCH images), runs of one model
 * are serialised, and a failed run is logged with the model, operation, batch shape and settings,
 * then reported to the caller as one summarised 500 (INFERENCE_FAILED).
 */
import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { FeatureOptions, FeatureOutput, PrgModelApi, SolveOptions } from '../../prg/inference-api';
import { ApiError } from '../common/errors';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { ModelRegistry } from '../repositories/model-registry.repository';
import { DynamicBatcher, Executor } from './batcher';
import { HealthService } from './health.service';
import { MetricsService } from './metrics.service';

export interface ClassifyRow {
  probabilities: Float32Array;
  /** Present when the model's manifest declares OOD thresholds. */
  ood: Record<string, number> | null;
}

export interface FeatureRow {
  data: Float32Array;
  /** Shape of one image's features (without the batch axis). */
  shape: number[];
}

type Op = 'classify' | 'features' | 'ood';

/** Decoded images, or their decoding still under way (counted as incoming for batching). */
export type Images = Float32Array[] | Promise<Float32Array[]>;

function concat(items: Float32Array[]): Float32Array {
  const out = new Float32Array(items.reduce((s, x) => s + x.length, 0));
  let o = 0;
  for (const x of items) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

function rows(data: Float32Array, n: number): Float32Array[] {
  const per = data.length / n;
  return Array.from({ length: n }, (_, i) => data.slice(i * per, (i + 1) * per));
}

@Injectable()
export class MlService {
  private readonly logger = new Logger('MlService');
  private readonly executors = new Map<string, Executor>();
  private readonly batchers = new Map<string, DynamicBatcher<Float32Array, unknown>>();
  /** Per model: requests accepted whose images are still decoding (they will submit soon). */
  private readonly incoming = new Map<string, number>();
  /** Requests (all models) that reached submit and have not been answered yet. */
  private active = 0;

  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    private readonly registry: ModelRegistry,
    private readonly metrics: MetricsService,
    private readonly health: HealthService,
  ) {}

  /**
   * More work for model `id` is on its way: a request for it is decoding, or an HTTP request is
   * in flight that has not reached the batcher yet (still being received or parsed).
   */
  private moreComing(id: string): boolean {
    return (this.incoming.get(id) ?? 0) > 0 || this.health.inFlight > this.active;
  }

  classify(id: string, images: Images, opts: SolveOptions): Promise<ClassifyRow[]> {
    return this.submit<ClassifyRow>(id, 'classify', opts, images, async (m, batch, n) => {
      const primary = m.manifest.ood?.primary;
      // The primary OOD score comes from the classify pass itself (one trajectory per image).
      const out = await m.classify(
        { data: batch, n },
        primary ? { ...opts, ood: [primary] } : opts,
      );
      const score = primary ? out.ood?.[primary] : undefined;
      return rows(out.probabilities, n).map((p, i): ClassifyRow => ({
        probabilities: p,
        ood: primary ? { [primary]: score?.[i] ?? NaN } : null,
      }));
    });
  }

  features(id: string, images: Images, opts: FeatureOptions): Promise<FeatureRow[]> {
    return this.submit<FeatureRow>(id, 'features', opts, images, async (m, batch, n) => {
      const out: FeatureOutput = await m.features({ data: batch, n }, opts);
      const shape = out.shape.slice(1);
      return rows(out.data, n).map((data) => ({ data, shape }));
    });
  }

  ood(id: string, images: Images, opts: SolveOptions): Promise<Record<string, number>[]> {
    return this.submit<Record<string, number>>(id, 'ood', opts, images, async (m, batch, n) => {
      const s = await m.oodScores({ data: batch, n }, opts);
      return Array.from({ length: n }, (_, i) =>
        Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v[i]])),
      );
    });
  }

  /** One image's reverse-process frames; not batched, but serialised with the model's runs. */
  async trajectory(
    id: string,
    image: Float32Array,
    opts: SolveOptions & { frames: number },
  ): Promise<FeatureOutput> {
    const m = await this.registry.get(id);
    return this.executor(id).run(() =>
      this.guard(id, 'trajectory', [1, image.length], opts, () => m.trajectory(image, opts)),
    );
  }

  private executor(id: string): Executor {
    let e = this.executors.get(id);
    // In the main thread: one run at a time (ORT blocks it and already uses every core). With N
    // worker threads: N + 1, so the next batch is queued in a worker while the current one runs.
    const n = this.config.inferenceWorkers;
    if (!e) this.executors.set(id, (e = new Executor(n > 0 ? n + 1 : 1)));
    return e;
  }

  private async submit<R>(
    id: string,
    op: Op,
    opts: object,
    pending: Images,
    run: (m: PrgModelApi, batch: Float32Array, n: number) => Promise<R[]>,
  ): Promise<R[]> {
    this.incoming.set(id, (this.incoming.get(id) ?? 0) + 1);
    let images: Float32Array[];
    let m: PrgModelApi;
    try {
      [images, m] = await Promise.all([pending, this.registry.get(id)]);
    } finally {
      this.incoming.set(id, this.incoming.get(id)! - 1);
    }
    const key = `${id}|${op}|${JSON.stringify(opts, Object.keys(opts).sort())}`;
    let b = this.batchers.get(key) as DynamicBatcher<Float32Array, R> | undefined;
    if (!b) {
      if (this.batchers.size > 1000)
        for (const [k, x] of this.batchers) if (x.pending === 0) this.batchers.delete(k);
      b = new DynamicBatcher<Float32Array, R>(
        async (items) => {
          this.metrics.inferencePending.dec({ model: id }, items.length);
          this.metrics.batchSize.observe({ model: id, op }, items.length);
          const end = this.metrics.inferenceDuration.startTimer({ model: id, op });
          const { channels: c, height: h, width: w } = m.manifest.input;
          // The coalesced batch runs in chunks of the model's run size, all issued at once (with
          // worker threads they spread over the workers); each chunk's requests are answered as
          // soon as it is done, so their clients' next requests overlap the rest of the run.
          const size = this.registry.runSize(id);
          const chunks: Promise<R[]>[] = [];
          for (let i = 0; i < items.length; i += size) {
            const ch = items.slice(i, i + size);
            chunks.push(
              this.guard(id, op, [ch.length, c, h, w], opts, () => run(m, concat(ch), ch.length)),
            );
          }
          void Promise.allSettled(chunks).then(() => end());
          return items.map((_, i) => chunks[Math.floor(i / size)].then((rs) => rs[i % size]));
        },
        {
          maxBatch: this.config.maxBatch,
          maxWaitMs: this.config.maxWaitMs,
          incoming: () => this.moreComing(id),
        },
        this.executor(id),
      );
      this.batchers.set(key, b as DynamicBatcher<Float32Array, unknown>);
    }
    this.metrics.inferencePending.inc({ model: id }, images.length);
    this.active++;
    try {
      return await Promise.all(images.map((x) => b.submit(x)));
    } finally {
      this.active--;
    }
  }

  private async guard<T>(
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
