import { DynamicModule, Module } from '@nestjs/common';
import { DatasetsController } from './datasets.controller';
import { DatasetsConfig, loadDatasetsConfig } from './datasets.config';
import { DATASETS_CONFIG, DatasetsService } from './datasets.service';
import { DatasetUploadInterceptor } from './upload.interceptor';

/** Dataset uploads (REST). Limits from env (datasets.config.ts) unless given (tests). */
@Module({})
export class DatasetsModule {
  static forRoot(config?: DatasetsConfig): DynamicModule {
    return {
      module: DatasetsModule,
      global: true,
      controllers: [DatasetsController],
      providers: [
        { provide: DATASETS_CONFIG, useFactory: () => config ?? loadDatasetsConfig() },
        DatasetsService,
        DatasetUploadInterceptor,
      ],
      exports: [DatasetsService, DATASETS_CONFIG],
    };
  }
}
