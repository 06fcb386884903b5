/**
 * `npm run worker`: a fine-tune worker apart from the API (same image, same env). Needs REDIS_URL;
 * takes jobs from the bull queue one at a time; on SIGTERM/SIGINT the running job is interrupted
 * and returned to the queue (it resumes from its last epoch checkpoint wherever it runs next).
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { applyHeapGrowth } from './heap-growth';
import { ConfigError, loadConfig } from './config/config';
import { createWorker } from './jobs/worker.module';

async function main(): Promise<void> {
  try {
    const config = loadConfig();
    applyHeapGrowth(config.heapGrowingPercent);
    const ctx = await createWorker(config);
    ctx.enableShutdownHooks(['SIGTERM', 'SIGINT']);
    new Logger('Worker').log(`fine-tune worker on ${config.redisUrl}`);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(2);
    }
    throw e;
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
