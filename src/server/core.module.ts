/**
 * Providers every feature module may inject (global): the model registry, metrics, health, the
 * API-key and rate-limit guards. The datasets/jobs modules use ModelRegistry.rescan() after writing
 * a model version, MetricsService.queueDepth/jobDuration, and @UseGuards(ApiKeyGuard).
 */
import { DynamicModule, Global, Module } from '@nestjs/common';
import { ApiKeyGuard } from './common/api-key.guard';
import { ImageUploadInterceptor } from './common/image-upload.interceptor';
import { RateLimitGuard } from './common/rate-limit.guard';
import { ImageRepository } from './repositories/image.repository';
import { defaultModelLoader, MODEL_LOADER, ModelLoader } from './repositories/model-loader';
import { ModelRegistry } from './repositories/model-registry.repository';
import { workerPoolLoader } from './repositories/worker-pool-model';
import { ServerConfig } from './config/config';
import { SERVER_CONFIG } from './config/config.module';
import { HealthService } from './services/health.service';
import { MetricsService } from './services/metrics.service';
import { MlService } from './services/ml.service';

const EXPORTED = [
  ModelRegistry,
  MetricsService,
  HealthService,
  ApiKeyGuard,
  RateLimitGuard,
  ImageRepository,
  ImageUploadInterceptor,
  MlService,
];

@Global()
@Module({})
export class CoreModule {
  static forRoot(loader?: ModelLoader): DynamicModule {
    return {
      module: CoreModule,
      providers: [
        {
          provide: MODEL_LOADER,
          inject: [SERVER_CONFIG],
          useFactory: (c: ServerConfig): ModelLoader =>
            loader ??
            (c.inferenceWorkers > 0 ? workerPoolLoader(c.inferenceWorkers) : defaultModelLoader),
        },
        ...EXPORTED,
      ],
      exports: [MODEL_LOADER, ...EXPORTED],
    };
  }
}
