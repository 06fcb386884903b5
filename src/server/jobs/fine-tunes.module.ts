/**
 * Fine-tune jobs: REST (/fine-tunes), GraphQL (fineTunes, fineTune, createFineTune,
 * cancelFineTune), the queue (bull on REDIS_URL, else in-process) and, unless WORKER=0, a worker.
 * `forWorker()` is the same without HTTP/GraphQL or the model registry (src/server/worker.ts).
 */
import { DynamicModule, Module, Provider } from '@nestjs/common';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { MlService } from '../ml/ml.service';
import { BullJobQueue } from './bull-queue';
import { FineTuneHandler } from './fine-tune.handler';
import {
  FINE_TUNE_TRAINER,
  OOD_FITTER,
  FineTuneTrainer,
  JOB_QUEUE,
  OodFitter,
  JOBS_CONFIG,
  JobQueue,
} from './fine-tune.types';
import { FineTunesController } from './fine-tunes.controller';
import { FineTunesResolver } from './fine-tunes.resolver';
import { FineTunesService, MODEL_CATALOG, ModelCatalog } from './fine-tunes.service';
import { JobsConfig, loadJobsConfig } from './jobs.config';
import { MemoryJobQueue } from './memory-queue';
import { fitOodFromSpecs } from '../../prg/ood/fit';
import { fineTuneModel } from '../../prg/training/finetune-job';

export interface FineTunesModuleOptions {
  /** The trainer jobs run (tests pass a fake); default fineTuneModel. */
  trainer?: FineTuneTrainer;
  /** OOD calibration of the new model; default fitOodFromSpecs. */
  oodFitter?: OodFitter;
  /** Overrides of the env-derived JobsConfig (tests). */
  jobs?: Partial<JobsConfig>;
}

function providers(o: FineTunesModuleOptions): Provider[] {
  return [
    {
      provide: JOBS_CONFIG,
      inject: [SERVER_CONFIG],
      useFactory: (s: ServerConfig): JobsConfig => ({ ...loadJobsConfig(s.redisUrl), ...o.jobs }),
    },
    {
      provide: JOB_QUEUE,
      inject: [JOBS_CONFIG],
      useFactory: async (c: JobsConfig): Promise<JobQueue> => {
        if (!c.redisUrl) return new MemoryJobQueue(c);
        const q = new BullJobQueue(c);
        await q.ready();
        return q;
      },
    },
    { provide: FINE_TUNE_TRAINER, useValue: o.trainer ?? fineTuneModel },
    { provide: OOD_FITTER, useValue: o.oodFitter ?? fitOodFromSpecs },
    FineTuneHandler,
    FineTunesService,
  ];
}

/** Workers resolve nothing: the API put the model's directory into the job. */
const noCatalog: ModelCatalog = {
  resolve: () => Promise.reject(new Error('no model registry in a worker process')),
  rescan: () => Promise.resolve(),
  find: () => undefined,
};

@Module({})
export class FineTunesModule {
  static forRoot(o: FineTunesModuleOptions = {}): DynamicModule {
    return {
      module: FineTunesModule,
      controllers: [FineTunesController],
      providers: [
        ...providers(o),
        { provide: MODEL_CATALOG, useExisting: MlService },
        FineTunesResolver,
      ],
      exports: [FineTunesService, JOBS_CONFIG],
    };
  }

  static forWorker(o: FineTunesModuleOptions = {}): DynamicModule {
    return {
      module: FineTunesModule,
      providers: [...providers(o), { provide: MODEL_CATALOG, useValue: noCatalog }],
      exports: [FineTunesService, JOBS_CONFIG],
    };
  }
}
