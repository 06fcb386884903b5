import { describe, expect, it } from 'vitest';
import { CurvePoint, crossings, median, parseThresholds, ratio } from '../../bench/tta-metrics';

const pt = (step: number, accuracy: number): CurvePoint => ({
  step,
  wallS: step * 2,
  cpuS: step,
  accuracy,
});

describe('time-to-accuracy helpers (bench/tta.ts)', () => {
  it('takes the first evaluation at or above each threshold, even if a later one dips', () => {
    const curve = [pt(0, 0.1), pt(5, 0.82), pt(10, 0.79), pt(15, 0.9), pt(20, 0.93)];
    expect(crossings(curve, [0.8, 0.9, 0.95])).toEqual([
      { threshold: 0.8, step: 5, wallS: 10, cpuS: 5 },
      { threshold: 0.9, step: 15, wallS: 30, cpuS: 15 },
      { threshold: 0.95, step: null, wallS: null, cpuS: null },
    ]);
  });

  it('counts a point exactly at the threshold as reaching it', () => {
    expect(crossings([pt(0, 0.5), pt(1, 0.9)], [0.9])[0].step).toBe(1);
  });

  it('refuses a curve out of step order', () => {
    expect(() => crossings([pt(5, 0.5), pt(3, 0.9)], [0.9])).toThrow(/not after/);
  });

  it('parses, dedupes and sorts thresholds; rejects percentages and junk', () => {
    expect(parseThresholds('0.95, 0.8,0.9,0.8')).toEqual([0.8, 0.9, 0.95]);
    expect(() => parseThresholds('90')).toThrow(/fraction/);
    expect(() => parseThresholds('x')).toThrow(/fraction/);
    expect(() => parseThresholds(' , ')).toThrow(/no accuracy/);
  });

  it('ratio is null when a side never got there; median of even and odd lists', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(1, 0)).toBeNull();
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBeNull();
  });
});
