/** The standalone fine-tune worker's Nest context (src/server/worker.ts; tests spawn it too). */
import {
  DynamicModule,
  INestApplicationContext,
  Logger,
  LoggerService,
  Module,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConfigError, ServerConfig } from '../config/config';
import { ConfigModule } from '../config/config.module';
import { DatasetsModule } from '../datasets/datasets.module';
import { FineTunesModule, FineTunesModuleOptions } from './fine-tunes.module';

@Module({})
export class WorkerModule {
  static forRoot(config: ServerConfig, o: FineTunesModuleOptions = {}): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        DatasetsModule.forRoot(),
        FineTunesModule.forWorker({ ...o, jobs: { ...o.jobs, worker: true } }),
      ],
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
  });
  await ctx.init();
  return ctx;
}
