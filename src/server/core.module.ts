/**
 * Providers every feature module may inject (global): the ML boundary and the model catalog under
 * it, metrics, health, the in-flight request count, the API-key and rate-limit guards, and the
 * multipart image interceptor. The jobs module uses ModelCatalog (resolve base models, rescan after
 * writing a version), MetricsService and HealthService.isDraining.
 */
import { DynamicModule, Global, Module } from '@nestjs/common';
import { ApiKeyGuard } from './common/api-key.guard';
import { ImageUploadInterceptor } from './common/image-upload.interceptor';
import { InFlightRequests } from './common/in-flight';
import { RateLimitGuard } from './common/rate-limit.guard';
import { ServerConfig } from './config/config';
import { SERVER_CONFIG } from './config/config.module';
import { HealthService } from './health/health.service';
import { MetricsService } from './metrics/metrics.service';
import { MlService } from './ml/ml.service';
import { ModelCatalog } from './ml/model-catalog';
import { defaultModelLoader, MODEL_LOADER, ModelLoader } from './ml/model-loader';
import { workerPoolLoader } from './ml/worker-pool-model';

const EXPORTED = [
  MlService,
  ModelCatalog,
  MetricsService,
  HealthService,
  InFlightRequests,
  ApiKeyGuard,
  RateLimitGuard,
  ImageUploadInterceptor,
];

export interface CoreOptions {
  /** Substitute model loader (tests, tools); default: src/prg/inference.ts with the OOD scorers. */
  loader?: ModelLoader;
  /**
   * Script a worker thread runs for PRG_INFERENCE_WORKERS > 0; default the compiled
   * inference-worker.js beside worker-pool-model.js (tests running the TS sources give their own).
   */
  inferenceWorkerEntry?: string;
}

@Global()
@Module({})
export class CoreModule {
  static forRoot(o: CoreOptions = {}): DynamicModule {
    return {
      module: CoreModule,
      providers: [
        {
          provide: MODEL_LOADER,
          inject: [SERVER_CONFIG],
          useFactory: (c: ServerConfig): ModelLoader =>
            o.loader ??
            (c.inferenceWorkers > 0
              ? workerPoolLoader(c.inferenceWorkers, o.inferenceWorkerEntry)
              : defaultModelLoader),
        },
        ...EXPORTED,
      ],
      exports: [MODEL_LOADER, ...EXPORTED],
    };
  }
}
