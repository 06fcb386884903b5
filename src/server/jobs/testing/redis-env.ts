/**
 * Spec helpers for the bull path: whether the real Redis is there, a unique queue prefix per run on
 * it, and cleanup.
 *
 * Specs that need Redis use `describe.skipIf(!redisAvailable)` (or `it.skipIf`) with "needs
 * Redis" in the title: without a Redis at TEST_REDIS_URL they are reported as skipped, and this
 * module prints once per spec file which URL did not answer and how to provide one. `.ci/run`
 * starts Redis when none is running and sets PRG_TEST_REQUIRE_REDIS=1, which turns a missing Redis
 * into an error instead of a skip, so CI never passes with these specs left out.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * PING in a child process: spec collection is synchronous (describe.skipIf needs the answer before
 * any hook runs), and Node has no synchronous socket. One connection attempt, 2 s at most.
 */
function redisAnswers(url: string): boolean {
  const probe = `
    const m = require(${JSON.stringify(require.resolve('ioredis'))});
    const Redis = m.default ?? m;
    const r = new Redis(process.argv[1], {
      lazyConnect: true, connectTimeout: 1500, maxRetriesPerRequest: 0, retryStrategy: () => null,
    });
    r.on('error', () => {});
    r.connect().then(() => r.ping()).then(
      (p) => process.exit(p === 'PONG' ? 0 : 1),
      () => process.exit(1),
    );`;
  const r = spawnSync(process.execPath, ['-e', probe, url], { timeout: 5000, stdio: 'ignore' });
  return r.status === 0;
}

/** Whether Redis answers PING at TEST_REDIS_URL (probed once per spec file that imports this). */
export const redisAvailable = redisAnswers(TEST_REDIS_URL);

if (!redisAvailable) {
  const where = `no Redis answers at ${TEST_REDIS_URL}`;
  if (process.env.PRG_TEST_REQUIRE_REDIS === '1')
    throw new Error(
      `PRG_TEST_REQUIRE_REDIS=1 but ${where}; the specs marked "needs Redis" need it`,
    );
  console.warn(
    `[specs] ${where}: the specs marked "needs Redis" are skipped. ` +
      'Start one (redis-server --port 6379) or point TEST_REDIS_URL at one.',
  );
}

export function uniquePrefix(): string {
  return `prg-test-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Deletes every key under `prefix` (bull's queue keys and our cancel flags). */
export async function deletePrefix(prefix: string): Promise<number> {
  const r = new Redis(TEST_REDIS_URL);
  try {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) n += await r.del(...keys);
    } while (cursor !== '0');
    return n;
  } finally {
    r.disconnect();
  }
}
