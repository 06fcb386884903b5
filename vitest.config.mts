import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// SWC instead of esbuild: NestJS needs emitDecoratorMetadata, which esbuild does not emit.
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  test: {
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts', 'web/src/**/*.spec.ts'],
    // The fault-injection suite has its own config (vitest.faults.config.mts, npm run test:faults).
    exclude: ['**/node_modules/**', 'test/faults/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // global.gc for the specs that measure memory after a full collection (hostile-input).
    poolOptions: { forks: { execArgv: ['--expose-gc'] } },
  },
});
