/** The standalone fine-tune worker's Nest context (src/server/worker.ts; tests spawn it too). */
import {
  DynamicModule,
  Global,
  INestApplicationContext,
  Inject,
  Injectable,
  Logger,
  LoggerService,
  Module,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { createServer, Server } from 'node:http';
import { NestFactory } from '@nestjs/core';
import { ConfigError, ServerConfig } from '../config/config';
import { ConfigModule } from '../config/config.module';
import { DatasetsModule } from '../datasets/datasets.module';
import { MetricsService } from '../metrics/metrics.service';
import { JOBS_CONFIG } from './fine-tune.types';
import { FineTunesModule, FineTunesModuleOptions } from './fine-tunes.module';
import { JobsConfig } from './jobs.config';

@Global()
@Module({ providers: [MetricsService], exports: [MetricsService] })
class WorkerMetricsModule {}

/** Prometheus /metrics of a worker process (a plain HTTP server: the worker has no Nest HTTP app). */
@Injectable()
class WorkerMetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private server: Server | null = null;

  constructor(
    private readonly metrics: MetricsService,
    @Inject(JOBS_CONFIG) private readonly config: JobsConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const port = this.config.workerMetricsPort;
    if (port === null) return;
    this.server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.metrics.render().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve) => this.server!.listen(port, resolve));
    new Logger('Worker').log(`metrics on :${port}/metrics`);
  }

  async onApplicationShutdown(): Promise<void> {
    await new Promise((r) => (this.server ? this.server.close(r) : r(undefined)));
  }
}

@Module({})
export class WorkerModule {
  static forRoot(config: ServerConfig, o: FineTunesModuleOptions = {}): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        WorkerMetricsModule,
        DatasetsModule.forRoot(),
        FineTunesModule.forWorker({ ...o, jobs: { ...o.jobs, worker: true } }),
      ],
      // Job durations and queue depth are recorded here; WORKER_METRICS_PORT serves them.
      providers: [WorkerMetricsServer],
    };
  }
}

export async function createWorker(
  config: ServerConfig,
  o: FineTunesModuleOptions & { logger?: LoggerService | false } = {},
): Promise<INestApplicationContext> {
  if (!config.redisUrl)
    throw new ConfigError([
      'REDIS_URL: required by `npm run worker` (without Redis, jobs run inside the API process)',
    ]);
  const ctx = await NestFactory.createApplicationContext(WorkerModule.forRoot(config, o), {
    logger: o.logger === undefined ? new Logger() : o.logger,
    // Throw (for main/the caller to report) instead of exiting the process.
    abortOnError: false,
  });
  await ctx.init();
  return ctx;
}
