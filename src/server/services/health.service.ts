/**
 * Liveness (the process answers) and readiness (models scanned and warmed up, at least one model,
 * Redis answering PING when REDIS_URL is set, not shutting down). Also counts in-flight requests
 * so shutdown can drain them.
 */
import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { ModelRegistry } from '../repositories/model-registry.repository';
import { MetricsService } from './metrics.service';

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

@Injectable()
export class HealthService implements OnApplicationShutdown {
  private readonly logger = new Logger('Health');
  private redis: Redis | null = null;
  private inflight = 0;
  private draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    private readonly registry: ModelRegistry,
    private readonly metrics: MetricsService,
  ) {}

  requestStarted(): void {
    this.inflight++;
  }

  requestFinished(): void {
    this.inflight--;
    if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  get inFlight(): number {
    return this.inflight;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Readiness turns false; resolves when no request is in flight, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    if (this.inflight === 0) return true;
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  async readiness(): Promise<Readiness> {
    const checks: Readiness['checks'] = {};
    const n = this.registry.list().length;
    this.metrics.modelsAvailable.set(n);
    const def = this.registry.defaultModelId;
    // With warm-up on, ready means the default model is loaded and answered a batch.
    const failed = def ? this.registry.loadError(def) : undefined;
    const loaded = !this.config.warmup || (def !== null && this.registry.isLoaded(def));
    checks.models = {
      ok: this.registry.ready && loaded,
      detail:
        n === 0
          ? `no valid model under ${this.config.modelsDir}`
          : !this.registry.ready
            ? 'warming up'
            : failed
              ? `default model ${def} failed to load: ${failed}`
              : !loaded
                ? `default model ${def ?? '(none)'} not loaded`
                : `${n} model(s), default ${def}`,
    };
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
