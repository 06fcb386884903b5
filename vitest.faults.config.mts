import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// `npm run test:faults`: the fault-injection suite (test/faults). It spawns the built server and
// worker (dist/, built by the npm script) and runs one spec file at a time: the specs kill
// processes, stop a Redis and fill a disk, and measure recovery, which parallel files would blur.
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  test: {
    include: ['test/faults/**/*.faults.spec.ts'],
    testTimeout: 240_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default', 'json'],
    outputFile: { json: 'test/faults/results.json' },
  },
});
