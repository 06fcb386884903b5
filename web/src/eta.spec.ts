import { describe, expect, it } from 'vitest';
import { formatDuration, remainingMs } from './eta';

describe('remainingMs', () => {
  it('extrapolates the mean rate since the first sample', () => {
    // 25% in 10 s → 75% more takes 30 s.
    expect(remainingMs({ at: 0, progress: 0 }, { at: 10_000, progress: 0.25 })).toBe(30_000);
    expect(remainingMs({ at: 5_000, progress: 0.5 }, { at: 10_000, progress: 0.75 })).toBe(5_000);
  });
  it('is null until progress moves', () => {
    expect(remainingMs({ at: 0, progress: 0.2 }, { at: 10_000, progress: 0.2 })).toBeNull();
    expect(remainingMs({ at: 10_000, progress: 0 }, { at: 10_000, progress: 0.5 })).toBeNull();
  });
});

describe('formatDuration', () => {
  it('uses the two largest units', () => {
    expect(formatDuration(45_400)).toBe('45 s');
    expect(formatDuration(185_000)).toBe('3 min 05 s');
    expect(formatDuration(2 * 3600_000 + 7 * 60_000)).toBe('2 h 07 min');
  });
});
