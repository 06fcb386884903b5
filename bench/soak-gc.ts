/**
 * Preloaded into the soaked processes by `bench:soak --gc` (`node --expose-gc -r …`): SIGUSR2 runs
 * a full V8 GC, so a sample taken right after it shows memory that is really held, not garbage
 * waiting for the next major GC. A diagnosis aid only; production never loads it.
 */
const runGc = (globalThis as { gc?: () => void }).gc;
if (runGc) process.on('SIGUSR2', () => runGc());
export {};
