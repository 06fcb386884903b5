/**
 * Read-your-writes for fine-tunes: the first GET of a succeeded job waits for a catalog rescan,
 * so a client that sees "succeeded" finds the new model version in GET /models at once.
 */
import { describe, expect, it } from 'vitest';
import type { FineTuneJobView, JobQueue } from './fine-tune.types';
import { FineTunesService, ModelCatalog } from './fine-tunes.service';

function service(status: string, rescan: () => Promise<void>): FineTunesService {
  const queue = {
    get: async (id: string) => ({ id, status }) as unknown as FineTuneJobView,
  } as unknown as JobQueue;
  const models = { rescan } as unknown as ModelCatalog;
  const none = {} as never;
  return new FineTunesService(queue, none, none, models, none, none);
}

describe('FineTunesService.get: read-your-writes after a job succeeds', () => {
  it('the first read of a succeeded job returns only after a rescan, later reads do not rescan', async () => {
    const order: string[] = [];
    const s = service('succeeded', async () => {
      order.push('rescan started');
      await new Promise((r) => setTimeout(r, 5));
      order.push('rescan done');
    });
    await s.get('ft_000000000001');
    order.push('answered');
    await s.get('ft_000000000001');
    expect(order).toEqual(['rescan started', 'rescan done', 'answered']);
    await s.get('ft_000000000002'); // another job: its own catch-up
    expect(order.filter((x) => x === 'rescan started')).toHaveLength(2);
  });

  it('jobs that have not succeeded do not rescan; a failed rescan is retried on the next read', async () => {
    let calls = 0;
    const running = service('running', async () => void calls++);
    await running.get('ft_000000000003');
    expect(calls).toBe(0);
    let fail = true;
    const s = service('succeeded', async () => {
      calls++;
      if (fail) throw new Error('EIO');
    });
    await expect(s.get('ft_000000000004')).resolves.toMatchObject({ status: 'succeeded' });
    fail = false;
    await s.get('ft_000000000004');
    await s.get('ft_000000000004');
    expect(calls).toBe(2);
  });
});
