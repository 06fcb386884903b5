/**
 * The application: config and core providers (global), REST controllers, GraphQL (code first,
 * Apollo at /graphql, context `{ req }` so guards work in resolvers). Feature modules owned by
 * other parts (datasets, fine-tune jobs) are listed in FEATURE_MODULES.
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
import { FineTunesModule } from './jobs/fine-tunes.module';
import { graphqlContext } from './common/graphql-context';
import { ModelsResolver } from './graphql/models.resolver';
import { ModelLoader } from './repositories/model-loader';
import { InferenceService } from './services/inference.service';
import { ModelsService } from './services/models.service';
import { ShutdownService } from './services/shutdown.service';

/** Datasets and fine-tune job modules register here. */
export const FEATURE_MODULES: (Type<unknown> | DynamicModule)[] = [
  DatasetsModule.forRoot(),
  FineTunesModule.forRoot(),
];

export interface AppOptions {
  /** Substitute model loader (tests, tools); default src/prg/inference.ts. */
  loader?: ModelLoader;
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
        ...FEATURE_MODULES,
      ],
      controllers: [ModelsController, ClassifyController, HealthController],
      providers: [ModelsService, InferenceService, ModelsResolver, ShutdownService],
    };
  }
}
