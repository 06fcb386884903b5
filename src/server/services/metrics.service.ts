/**
 * Prometheus metrics (prom-client), one registry per app instance. Other modules record through
 * the public fields: the jobs module sets `queueDepth` and observes `jobDuration`.
 */
import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly httpDuration = this.histogram(
    'prg_http_request_duration_seconds',
    'HTTP request latency by method, route pattern and status',
    ['method', 'route', 'status'],
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );

  readonly batchSize = this.histogram(
    'prg_inference_batch_size',
    'Images per coalesced ORT run (dynamic batching)',
    ['model', 'op'],
    [1, 2, 4, 8, 16, 32, 64, 128],
  );

  readonly inferenceDuration = this.histogram(
    'prg_inference_duration_seconds',
    'Duration of one coalesced inference run',
    ['model', 'op'],
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );

  readonly inferencePending = this.gauge(
    'prg_inference_pending_images',
    'Images waiting for a batch slot, per model',
    ['model'],
  );

  readonly inferenceErrors = this.counter('prg_inference_errors_total', 'Failed inference runs', [
    'model',
    'op',
  ]);

  readonly modelsAvailable = this.gauge(
    'prg_models_available',
    'Valid model directories under MODELS_DIR',
  );

  /** Set by the jobs module: jobs per queue and state (waiting, active, delayed, ...). */
  readonly queueDepth = this.gauge('prg_job_queue_depth', 'Fine-tune jobs per queue and state', [
    'queue',
    'state',
  ]);

  /** Observed by the jobs module when a job ends. */
  readonly jobDuration = this.histogram(
    'prg_job_duration_seconds',
    'Fine-tune job duration by final status',
    ['status'],
    [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
  );

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'prg_' });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  // The metric factories register on this instance's registry, never prom-client's global one, so
  // several apps in one process (tests) do not collide on metric names. Methods live on the
  // prototype, so the field initializers above can call them.
  private histogram<L extends string = string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: number[],
  ): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  private gauge<L extends string = string>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
  ): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  private counter<L extends string = string>(
    name: string,
    help: string,
    labelNames: readonly L[],
  ): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }
}
