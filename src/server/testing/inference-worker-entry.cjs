/* global require */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS worker entry */
/**
 * Test-only worker-thread entry for PRG_INFERENCE_WORKERS: runs the TypeScript sources of
 * ml/inference-worker.ts through the swc require hook (createTestApp passes this file as the
 * inference worker entry; production runs the compiled inference-worker.js).
 */
require('../jobs/testing/swc-register.cjs');
require('../ml/inference-worker.ts');
