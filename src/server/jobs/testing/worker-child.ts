/**
 * A real fine-tune worker process for specs (spawned with swc-register.cjs): the production
 * WorkerModule with the fake trainer (FAKE_STEP_MS per step, FAKE_STEPS per epoch). Prints
 * "ready" once it takes jobs. Configured from the environment like `npm run worker`.
 */
import 'reflect-metadata';
import { loadConfig } from '../../config/config';
import { createWorker } from '../worker.module';
import { fakeTrainer } from './fake-trainer';

async function main(): Promise<void> {
  const ctx = await createWorker(loadConfig(), {
    trainer: fakeTrainer({
      stepDelayMs: Number(process.env.FAKE_STEP_MS ?? 50),
      stepsPerEpoch: Number(process.env.FAKE_STEPS ?? 3),
    }),
    logger: false,
  });
  ctx.enableShutdownHooks(['SIGTERM']);
  process.stdout.write('ready\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
