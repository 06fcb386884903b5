/**
 * The application: config and core providers (global), REST controllers, GraphQL (code first,
 * Apollo at /graphql, context `{ req }` so guards work in resolvers). Feature modules owned by
 * other parts (datasets, fine-tune jobs) are listed in featureModules.
 */
import { ApolloDriver, ApolloDriverConfig } from '@nestjs/apollo';
import { DynamicModule, Module, Type } from '@nestjs/common';
import { GraphQLModule } from '@nestjs/graphql';
import { ServerConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { ClassifyController } from './controllers/classify.controller';
import { HealthController } from './controllers/health.controller';
import { ModelsController } from './controllers/models.controller';
import { CoreModule } from './core.module';
import { DatasetsModule } from './datasets/datasets.module';
import type { FineTuneTrainer, OodFitter } from './jobs/fine-tune.types';
import { FineTunesModule } from './jobs/fine-tunes.module';
import { graphqlContext } from './common/graphql-context';
import { ModelsResolver } from './graphql/models.resolver';
import { ModelLoader } from './repositories/model-loader';
import { InferenceService } from './services/inference.service';
import { ModelsService } from './services/models.service';
import { ShutdownService } from './services/shutdown.service';

/** Datasets and fine-tune job modules register here. */
function featureModules(opts: AppOptions): (Type<unknown> | DynamicModule)[] {
  return [
    DatasetsModule.forRoot(),
    FineTunesModule.forRoot({ trainer: opts.trainer, oodFitter: opts.oodFitter }),
  ];
}

export interface AppOptions {
  /** Substitute model loader (tests, tools); default src/prg/inference.ts. */
  loader?: ModelLoader;
  /** Substitute fine-tune trainer (tests); default fineTuneModel (src/prg/training). */
  trainer?: FineTuneTrainer;
  /** Substitute OOD calibration of fine-tuned models (tests); default fitOodFromSpecs. */
  oodFitter?: OodFitter;
}

@Module({})
export class AppModule {
  static forRoot(config: ServerConfig, opts: AppOptions = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        CoreModule.forRoot(opts.loader),
        GraphQLModule.forRoot<ApolloDriverConfig>({
          driver: ApolloDriver,
          path: '/graphql',
          autoSchemaFile: true,
          sortSchema: true,
          introspection: true,
          context: graphqlContext,
          subscriptions: { 'graphql-ws': true },
        }),
        ...featureModules(opts),
      ],
      controllers: [ModelsController, ClassifyController, HealthController],
      providers: [ModelsService, InferenceService, ModelsResolver, ShutdownService],
    };
  }
}
