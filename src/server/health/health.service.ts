/**
 * Liveness (the process answers) and readiness (the default model warm, at least one model, Redis
 * answering PING when REDIS_URL is set, not shutting down). Drains in-flight requests on shutdown.
 */
import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { InFlightRequests } from '../common/in-flight';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { MetricsService } from '../metrics/metrics.service';
import { MlService } from '../ml/ml.service';

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

@Injectable()
export class HealthService implements OnApplicationShutdown {
  private readonly logger = new Logger('Health');
  private redis: Redis | null = null;
  private draining = false;

  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    private readonly ml: MlService,
    private readonly metrics: MetricsService,
    private readonly inFlight: InFlightRequests,
  ) {}

  get isDraining(): boolean {
    return this.draining;
  }

  /** Readiness turns false (503) from now on. */
  startDraining(): void {
    this.draining = true;
  }

  /** Readiness turns false; resolves when no request is in flight, or false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    return this.inFlight.idle(timeoutMs);
  }

  async readiness(): Promise<Readiness> {
    const checks: Readiness['checks'] = {};
    const { ok, detail, count } = this.ml.modelsReadiness();
    this.metrics.modelsAvailable.set(count);
    checks.models = { ok, detail };
    if (this.config.redisUrl) checks.redis = await this.pingRedis();
    if (this.draining) checks.shutdown = { ok: false, detail: 'draining for shutdown' };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }
  private async pingRedis(): Promise<{ ok: boolean; detail: string }> {
    this.redis ??= new Redis(this.config.redisUrl!, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      retryStrategy: () => null,
    });
    // Failures surface through ping(); without a listener ioredis logs every one as unhandled.
    this.redis.on('error', () => {});
    const r = this.redis;
    try {
      if (r.status !== 'ready') {
        if (r.status === 'end' || r.status === 'wait') await r.connect();
      }
      const pong = await Promise.race([
        r.ping(),
        new Promise<never>((_, rej) =>
          setTimeout(() => rej(new Error('timeout after 1 s')), 1000).unref(),
        ),
      ]);
      return { ok: pong === 'PONG', detail: `PING → ${pong}` };
    } catch (e) {
      // A fresh client next time: ioredis does not reconnect with retryStrategy null.
      this.redis = null;
      r.disconnect();
      return { ok: false, detail: `redis unreachable: ${(e as Error).message}` };
    }
  }

  onApplicationShutdown(): void {
    this.redis?.disconnect();
    this.logger.log('closed');
  }
}
