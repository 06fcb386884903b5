/** Spec helpers for the bull path: a unique queue prefix per run on the real Redis, and cleanup. */
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

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
