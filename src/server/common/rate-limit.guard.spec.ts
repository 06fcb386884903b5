import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './rate-limit.guard';

describe('TokenBuckets', () => {
  it('grants the burst, then refills at rps per client', () => {
    let now = 0;
    const b = new TokenBuckets(2, 3, () => now);
    expect([b.take('a'), b.take('a'), b.take('a')]).toEqual([0, 0, 0]);
    expect(b.take('a')).toBeCloseTo(0.5);
    expect(b.take('b')).toBe(0); // another client has its own bucket
    now += 500; // +1 token at 2/s
    expect(b.take('a')).toBe(0);
    expect(b.take('a')).toBeGreaterThan(0);
  });
});
