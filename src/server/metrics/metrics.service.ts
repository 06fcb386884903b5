/**
 * Prometheus metrics (prom-client), one registry per app instance. Other modules record through
 * the public fields: the jobs module sets `queueDepth` and observes `jobDuration`.
 */
import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram(
    this.registered({
      name: 'prg_http_request_duration_seconds',
      help: 'HTTP request latency by method, route pattern and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
  );

  readonly batchSize = new Histogram(
    this.registered({
      name: 'prg_inference_batch_size',
      help: 'Images per coalesced ORT run (dynamic batching)',
      labelNames: ['model', 'op'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    }),
  );

  readonly inferenceDuration = new Histogram(
    this.registered({
      name: 'prg_inference_duration_seconds',
      help: 'Duration of one coalesced inference run',
      labelNames: ['model', 'op'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
  );

  readonly inferencePending = new Gauge(
    this.registered({
      name: 'prg_inference_pending_images',
      help: 'Images waiting for a batch slot, per model',
      labelNames: ['model'] as const,
    }),
  );

  readonly inferenceErrors = new Counter(
    this.registered({
      name: 'prg_inference_errors_total',
      help: 'Failed inference runs',
      labelNames: ['model', 'op'] as const,
    }),
  );

  readonly modelsAvailable = new Gauge(
    this.registered({
      name: 'prg_models_available',
      help: 'Valid model directories under MODELS_DIR',
    }),
  );

  /** Set by the jobs module: jobs per queue and state (waiting, active, delayed, ...). */
  readonly queueDepth = new Gauge(
    this.registered({
      name: 'prg_job_queue_depth',
      help: 'Fine-tune jobs per queue and state',
      labelNames: ['queue', 'state'] as const,
    }),
  );

  /** Observed by the jobs module when a job ends. */
  readonly jobDuration = new Histogram(
    this.registered({
      name: 'prg_job_duration_seconds',
      help: 'Fine-tune job duration by final status',
      labelNames: ['status'] as const,
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
    }),
  );

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'prg_' });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  // Every metric registers on this instance's registry, never prom-client's global one, so several
  // apps in one process (tests) do not collide on metric names. A method lives on the prototype,
  // so the field initializers above can call it.
  private registered<C extends object>(config: C): C & { registers: Registry[] } {
    return { ...config, registers: [this.registry] };
  }
}
