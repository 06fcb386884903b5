/**
 * The application: config and core providers (global), REST controllers, GraphQL (code first,
 * Apollo at /graphql, context `{ req }` so guards work in resolvers). Feature modules owned by
 * other parts (datasets, fine-tune jobs) are listed in FEATURE_MODULES. The web dashboard (dist/web)
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
import { FineTunesModule } from './jobs/fine-tunes.module';
import { graphqlContext } from './jobs/graphql-context';
import { ClassifyController } from './models/classify.controller';
import { ModelsController } from './models/models.controller';
import { ModelsResolver } from './models/models.resolver';
import { DashboardModule } from './web/dashboard.module';

/** Datasets and fine-tune job modules register here. */
export const FEATURE_MODULES: (Type<unknown> | DynamicModule)[] = [
  DatasetsModule.forRoot(),
  FineTunesModule.forRoot(),
];

export type AppOptions = CoreOptions;

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
          introspection: true,
          // Errors carry code and statusCode (common/http-exception.filter.ts), never server stacks.
          includeStacktraceInErrorResponses: false,
          context: graphqlContext,
          subscriptions: { 'graphql-ws': true },
        }),
        ...FEATURE_MODULES,
        DashboardModule.forRoot(),
      ],
      controllers: [ModelsController, ClassifyController, HealthController],
      providers: [ModelsResolver, ShutdownService],
    };
  }
}
