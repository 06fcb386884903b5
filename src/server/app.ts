/** Builds the configured Nest application (not yet listening): used by main.ts and the tests. */
import { INestApplication, Logger, LoggerService, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { json } from 'express';
import helmet from 'helmet';
import type { NextFunction, Request, Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { AllExceptionsFilter } from './common/http-exception.filter';
import { AppModule, AppOptions } from './app.module';
import { ServerConfig } from './config/config';
import { InFlightRequests } from './common/in-flight';
import { HealthService } from './health/health.service';
import { rejectPrototypeKeys, verifyJsonDepth } from './common/json-body';
import { MetricsService } from './metrics/metrics.service';
import { SERVER_VERSION } from './server-info';
import { V2_PREFIX, v2ErrorBody } from './v2/v2-errors';

const isV2Path = (url: string | undefined) =>
  url === V2_PREFIX || !!url?.startsWith(`${V2_PREFIX}/`) || !!url?.startsWith(`${V2_PREFIX}?`);

export async function createApp(
  config: ServerConfig,
  opts: AppOptions & { logger?: LoggerService | false } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, opts), {
    bodyParser: false,
    logger: opts.logger === undefined ? new Logger() : opts.logger,
  });
  const metrics = app.get(MetricsService);
  const inFlight = app.get(InFlightRequests);
  const health = app.get(HealthService);

  // Latency per route pattern (not raw URL: bounded label set) and the in-flight count for draining.
  app.use((req: Request, res: Response, next: NextFunction) => {
    const end = metrics.httpDuration.startTimer();
    inFlight.started();
    // Draining for shutdown: clients drop their keep-alive connection after this response, so
    // none sends its next request on a socket about to be closed (a reset, not a refusal).
    if (health.isDraining) res.setHeader('Connection', 'close');
    let done = false;
    res.on('close', () => {
      if (done) return;
      done = true;
      inFlight.finished();
      const route = (req.route as { path?: string } | undefined)?.path;
      end({
        method: req.method,
        route: route
          ? `${req.baseUrl}${route}`
          : req.path === '/graphql'
            ? '/graphql'
            : 'unmatched',
        status: String(res.statusCode),
      });
    });
    next();
  });
  // Open Inference Protocol bodies are read raw (v2.controller.ts): JSON, or JSON followed by
  // binary tensors, from clients that may send any content type (or none). Registered first, so
  // the JSON parser leaves them alone.
  app.useBodyParser('raw', {
    limit: config.maxUploadBytes,
    type: (req: IncomingMessage) => isV2Path(req.url),
  });
  // express.json directly: Nest's useBodyParser reserves `verify` (for its rawBody option).
  app.use(
    json({ limit: config.maxUploadBytes, verify: verifyJsonDepth, reviver: rejectPrototypeKeys }),
  );
  app.useGlobalFilters(new AllExceptionsFilter({ [V2_PREFIX]: v2ErrorBody }));
  app.useGlobalPipes(
    new ValidationPipe({ transform: true, whitelist: true, forbidNonWhitelisted: true }),
  );
  app.set('trust proxy', 'loopback');
  // Security headers (helmet's defaults) on every answer. Its Content-Security-Policy is left out:
  // the API answers JSON, and its two HTML pages (Swagger UI at /docs, the GraphQL landing page)
  // run inline scripts the default policy blocks.
  app.use(helmet({ contentSecurityPolicy: false }));
  if (config.corsOrigins.length)
    app.enableCors({
      origin: config.corsOrigins.includes('*') ? true : config.corsOrigins,
      allowedHeaders: ['content-type', 'x-api-key', 'authorization', 'apollo-require-preflight'],
      exposedHeaders: ['retry-after'],
    });

  const doc = new DocumentBuilder()
    .setTitle('PRG server')
    .setDescription(
      'Pretrained Reversible Generation: flow models as classifiers, feature extractors and OOD detectors. ' +
        'Errors are JSON {statusCode, code, message}; under /v2 (Open Inference Protocol) {error, code}. GraphQL at /graphql.',
    )
    .setVersion(SERVER_VERSION)
    .addApiKey({ type: 'apiKey', name: 'x-api-key', in: 'header' }, 'api-key')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'the same keys' }, 'bearer')
    .build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, doc));
  return app;
}
