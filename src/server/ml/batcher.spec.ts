import { describe, expect, it, vi } from 'vitest';
import { DynamicBatcher, Executor } from './batcher';

describe('DynamicBatcher', () => {
  it('coalesces concurrent submissions into runs of at most maxBatch, outputs in order', async () => {
    const runs: number[][] = [];
    const b = new DynamicBatcher<number, number>(
      async (xs) => {
        runs.push(xs);
        return xs.map((x) => x * 10);
      },
      { maxBatch: 4, maxWaitMs: 5 },
    );
    const out = await Promise.all([1, 2, 3, 4, 5, 6].map((x) => b.submit(x)));
    expect(out).toEqual([10, 20, 30, 40, 50, 60]);
    expect(runs).toEqual([
      [1, 2, 3, 4],
      [5, 6],
    ]);
  });

  it('items arriving while a run is busy join the next run', async () => {
    const runs: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const b = new DynamicBatcher<number, number>(
      async (xs) => {
        runs.push(xs);
        if (runs.length === 1) await gate;
        return xs;
      },
      { maxBatch: 8, maxWaitMs: 0 },
    );
    const first = b.submit(1);
    // Wait for the first run itself (not a fixed sleep: on a loaded machine a 5 ms timer can fire
    // in the same loop turn as the batcher's 0 ms one, before the run starts).
    await vi.waitFor(() => expect(runs).toHaveLength(1));
    const rest = [2, 3, 4].map((x) => b.submit(x));
    await new Promise((r) => setTimeout(r, 5));
    release();
    await Promise.all([first, ...rest]);
    expect(runs).toEqual([[1], [2, 3, 4]]);
  });

  it('a failing run rejects every item of that run only', async () => {
    const b = new DynamicBatcher<number, number>(
      async (xs) => {
        if (xs.includes(-1)) throw new Error('boom');
        return xs;
      },
      { maxBatch: 2, maxWaitMs: 1 },
    );
    const r = await Promise.allSettled([b.submit(-1), b.submit(2), b.submit(3)]);
    expect(r.map((x) => x.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
  });

  it('batchers sharing an executor never run at the same time', async () => {
    const ex = new Executor();
    let running = 0;
    let maxRunning = 0;
    const run = async (xs: number[]) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
      return xs;
    };
    const a = new DynamicBatcher(run, { maxBatch: 2, maxWaitMs: 0 }, ex);
    const c = new DynamicBatcher(run, { maxBatch: 2, maxWaitMs: 0 }, ex);
    await Promise.all([1, 2, 3].flatMap((x) => [a.submit(x), c.submit(x)]));
    expect(maxRunning).toBe(1);
  });
});
