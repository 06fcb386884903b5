/**
 * Pure helpers of the time-to-accuracy benchmark (bench/tta.ts): when a validation curve first
 * reaches each accuracy threshold, medians and side-by-side ratios. No I/O, so
 * test/bench/tta-metrics.spec.ts checks them directly.
 */

/** One validation measurement, taken after `step` optimizer steps. */
export interface CurvePoint {
  step: number;
  /** Training time so far (evaluations excluded), wall-clock and process CPU (all threads). */
  wallS: number;
  cpuS: number;
  accuracy: number;
}

/** The first point of a curve at or above `threshold`; nulls when the curve never gets there. */
export interface Crossing {
  threshold: number;
  step: number | null;
  wallS: number | null;
  cpuS: number | null;
}

/** Thresholds from a comma list of fractions ("0.8,0.9,0.95"), each in (0, 1], sorted. */
export function parseThresholds(spec: string): number[] {
  const out = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const v = Number(s);
      if (!(v > 0 && v <= 1))
        throw new Error(`threshold "${s}" is not a fraction in (0, 1] (e.g. 0.9 for 90 %)`);
      return v;
    });
  if (!out.length) throw new Error('no accuracy thresholds given');
  return [...new Set(out)].sort((a, b) => a - b);
}

/**
 * For each threshold, the first curve point whose accuracy reaches it. The curve must be in
 * optimizer-step order with non-decreasing times (an evaluation schedule, not a sorted set of
 * results): a later point that dips below the threshold does not undo the crossing.
 */
export function crossings(curve: readonly CurvePoint[], thresholds: readonly number[]): Crossing[] {
  for (let i = 1; i < curve.length; i++) {
    const a = curve[i - 1];
    const b = curve[i];
    if (b.step <= a.step || b.wallS < a.wallS || b.cpuS < a.cpuS)
      throw new Error(
        `curve point ${i} (step ${b.step}) is not after point ${i - 1} (step ${a.step})`,
      );
  }
  return thresholds.map((threshold) => {
    const p = curve.find((c) => c.accuracy >= threshold);
    return p
      ? { threshold, step: p.step, wallS: p.wallS, cpuS: p.cpuS }
      : { threshold, step: null, wallS: null, cpuS: null };
  });
}

/** a / b rounded to 3 decimals; null when either is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a == null || b == null || b === 0) return null;
  return Number((a / b).toFixed(3));
}

export function median(xs: readonly number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
