import { describe, expect, it } from 'vitest';
import { auroc, averagePrecision, detectionMetrics, fprAtTpr, thresholdAtTpr } from './metrics';

describe('OOD detection metrics (hand-computed cases)', () => {
  it('perfect separation gives AUROC 1, AUPRs 1, FPR95 0', () => {
    expect(detectionMetrics([3, 2], [1, 0])).toEqual({
      auroc: 1,
      aupr_in: 1,
      aupr_out: 1,
      fpr95: 0,
    });
  });

  it('reversed separation gives AUROC 0 and FPR95 1', () => {
    const m = detectionMetrics([0, 1], [2, 3]);
    expect(m.auroc).toBe(0);
    expect(m.fpr95).toBe(1);
    // in = positives ranked last: precision 2/4 at the only recall step reaching them.
    expect(m.aupr_in).toBeCloseTo(0.5 * (1 / 3) + 0.5 * (2 / 4), 12);
  });

  it('all scores tied: AUROC ½, AP = base rate, everything accepted', () => {
    expect(auroc([1, 1], [1, 1])).toBe(0.5);
    expect(averagePrecision([1, 1], [1, 1, 1])).toBeCloseTo(2 / 5, 12);
    expect(fprAtTpr([1, 1], [1, 1])).toBe(1);
  });

  it('a mixed case with one tie across classes', () => {
    // pairs (in, out): .9>.8, .9>.3, .8=.8 (½), .8>.3, .4<.8, .4>.3  → 4.5 / 6
    const inS = [0.9, 0.8, 0.4];
    const outS = [0.8, 0.3];
    const m = detectionMetrics(inS, outS);
    expect(m.auroc).toBeCloseTo(0.75, 12);
    // thresholds .9 (tp1 fp0), .8 (tp2 fp1), .4 (tp3 fp1): 1/3·1 + 1/3·2/3 + 1/3·3/4
    expect(m.aupr_in).toBeCloseTo(29 / 36, 12);
    // out as positive on negated scores: -.3 (tp1 fp0), -.4 (fp1), -.8 (tp2 fp2): ½·1 + ½·½
    expect(m.aupr_out).toBeCloseTo(0.75, 12);
    // ⌈.95·3⌉ = 3rd highest in-score = .4 → out scores ≥ .4: one of two
    expect(m.fpr95).toBe(0.5);
  });

  it('threshold at 95% TPR keeps at least 95% of the in-distribution scores', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i); // 0..99
    const tau = thresholdAtTpr(xs, 0.95);
    expect(tau).toBe(5); // 95 values (5..99) are >= 5
    expect(xs.filter((x) => x >= tau).length).toBe(95);
    expect(thresholdAtTpr([7], 0.95)).toBe(7);
  });

  it('rejects empty or non-finite scores with a clear error', () => {
    expect(() => auroc([], [1])).toThrow(/no scores/);
    expect(() => auroc([NaN], [1])).toThrow(/not finite/);
    expect(() => thresholdAtTpr([1], 0)).toThrow(/tpr/);
  });
});
