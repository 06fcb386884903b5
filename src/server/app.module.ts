/**
 * The application: config and core providers (global), REST controllers, GraphQL (code first,
 * Apollo at /graphql, context `{ req }` so guards work in resolvers). Feature modules owned by
 * other parts (datasets, fine-tune jobs) are listed in featureModules. The web dashboard (dist/web)
 * is served at `/` (web/dashboard.module.ts), read from WEB_DIR each time an app is built.
 */
import { ApolloDriver, ApolloDriverConfig } from '@nestjs/apollo';
import { DynamicModule, Module, Type } from '@nestjs/common';
import { GraphQLModule } from '@nestjs/graphql';
import { ServerConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { CoreModule, CoreOptions } from './core.module';
import { DatasetsModule } from './datasets/datasets.module';
import { HealthController } from './health/health.controller';
import { ShutdownService } from './health/shutdown.service';
import type { FineTuneTrainer, OodFitter } from './jobs/fine-tune.types';
import { FineTunesModule } from './jobs/fine-tunes.module';
import { graphqlContext } from './common/graphql-context';
import { graphqlArmor, graphqlParseOptions } from './common/graphql-limits';
import { ClassifyController } from './models/classify.controller';
import { ModelsController } from './models/models.controller';
import { ModelsResolver } from './models/models.resolver';
import { V2Controller } from './v2/v2.controller';
import { DashboardModule } from './web/dashboard.module';

/** Datasets and fine-tune job modules register here. */
function featureModules(opts: AppOptions): (Type<unknown> | DynamicModule)[] {
  return [
    DatasetsModule.forRoot(),
    FineTunesModule.forRoot({ trainer: opts.trainer, oodFitter: opts.oodFitter }),
  ];
}

export interface AppOptions extends CoreOptions {
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
        CoreModule.forRoot(opts),
        GraphQLModule.forRoot<ApolloDriverConfig>({
          driver: ApolloDriver,
          path: '/graphql',
          autoSchemaFile: true,
          sortSchema: true,
          introspection: config.graphqlIntrospection,
          playground: config.graphqlPlayground,
          // Apollo refuses GET and simple-content-type POSTs without a preflight-forcing header.
          csrfPrevention: true,
          // Depth, alias, cost and token limits as validation rules (graphql-armor), so an alias
          // bomb of classify calls is refused before any inference runs.
          ...graphqlArmor(config),
          parseOptions: graphqlParseOptions(config),
          // Errors carry code and statusCode (common/http-exception.filter.ts), never server stacks.
          includeStacktraceInErrorResponses: false,
          // Apollo stops (and its drain plugin closes the HTTP server) after the shutdown drain,
          // not before it: by default it stops in onModuleDestroy, which Nest runs before
          // beforeApplicationShutdown, so SIGTERM refused connections at once (health/shutdown).
          stopOnApplicationShutdown: true,
          context: graphqlContext,
          subscriptions: { 'graphql-ws': true },
        }),
        ...featureModules(opts),
        DashboardModule.forRoot(),
      ],
      controllers: [ModelsController, ClassifyController, HealthController, V2Controller],
      providers: [ModelsResolver, ShutdownService],
    };
  }
}
