/** `npm start`: validate the environment, build the app, serve on PORT until SIGTERM/SIGINT. */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp } from './app';
import { applyHeapGrowth } from './heap-growth';
import { ConfigError, loadConfig, ServerConfig } from './config/config';

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(2);
    }
    throw e;
  }
  applyHeapGrowth(config.heapGrowingPercent);
  const app = await createApp(config);
  app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
  await app.listen(config.port, config.host);
  new Logger('Main').log(
    `PRG server on http://${config.host}:${config.port} (REST /docs, GraphQL /graphql), models from ${config.modelsDir}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
