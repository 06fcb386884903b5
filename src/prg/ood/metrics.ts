/**
 * Detection metrics for OOD scores. Convention everywhere in src/prg/ood: a score is higher for
 * inputs that look more in-distribution; "in" samples are the positives of AUPR-in and of the
 * true-positive rate, "out" samples the positives of AUPR-out.
 *
 * Ties are handled by grouping equal scores into one threshold (no ordering among them is
 * assumed), which gives the Mann–Whitney form of the AUROC (a tie counts ½) and the step-wise
 * average precision of scikit-learn's `average_precision_score`.
 */

export interface DetectionMetrics {
  auroc: number;
  aupr_in: number;
  aupr_out: number;
  fpr95: number;
}

function checkScores(xs: ArrayLike<number>, what: string): void {
  if (xs.length === 0) throw new Error(`${what}: no scores`);
  for (let i = 0; i < xs.length; i++)
    if (!Number.isFinite(xs[i])) throw new Error(`${what}: score ${i} is ${xs[i]}, not finite`);
}

/**
 * Distinct thresholds from high to low with the count of positives and negatives at each one:
 * the confusion counts at "predict positive when score >= threshold" follow by cumulative sums.
 */
function groups(
  pos: ArrayLike<number>,
  neg: ArrayLike<number>,
): { value: number; p: number; n: number }[] {
  const all: [number, number][] = [];
  for (let i = 0; i < pos.length; i++) all.push([pos[i], 1]);
  for (let i = 0; i < neg.length; i++) all.push([neg[i], 0]);
  all.sort((a, b) => b[0] - a[0]);
  const out: { value: number; p: number; n: number }[] = [];
  for (const [v, isPos] of all) {
    const last = out[out.length - 1];
    const g = last && last.value === v ? last : undefined;
    if (g) {
      if (isPos) g.p++;
      else g.n++;
    } else out.push({ value: v, p: isPos, n: 1 - isPos });
  }
  return out;
}

/** P(score_pos > score_neg) + ½·P(equal): the area under the ROC curve with ties as diagonals. */
export function auroc(pos: ArrayLike<number>, neg: ArrayLike<number>): number {
  checkScores(pos, 'auroc positives');
  checkScores(neg, 'auroc negatives');
  let negAbove = 0;
  let sum = 0;
  for (const g of groups(pos, neg)) {
    // positives in this group beat every negative strictly below: count negatives not yet seen.
    sum += g.p * (neg.length - negAbove - g.n) + 0.5 * g.p * g.n;
    negAbove += g.n;
  }
  return sum / (pos.length * neg.length);
}

/**
 * Average precision of `pos` against `neg` (higher score = positive): Σ_k (R_k − R_{k−1})·P_k over
 * the distinct thresholds from high to low (scikit-learn's definition, no interpolation).
 */
export function averagePrecision(pos: ArrayLike<number>, neg: ArrayLike<number>): number {
  checkScores(pos, 'aupr positives');
  checkScores(neg, 'aupr negatives');
  let tp = 0;
  let fp = 0;
  let ap = 0;
  for (const g of groups(pos, neg)) {
    tp += g.p;
    fp += g.n;
    if (g.p) ap += (g.p / pos.length) * (tp / (tp + fp));
  }
  return Math.min(1, ap); // the recall steps sum to 1 only up to rounding
}

function negate(xs: ArrayLike<number>): Float64Array {
  const out = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = -xs[i];
  return out;
}

/**
 * The largest threshold τ such that at least `tpr` of the in-distribution scores are ≥ τ
 * (an in-distribution score equal to τ is accepted). With n scores sorted high to low this is
 * the ⌈tpr·n⌉-th one. Used both to calibrate the shipped thresholds and for FPR@95%TPR.
 */
export function thresholdAtTpr(inScores: ArrayLike<number>, tpr = 0.95): number {
  checkScores(inScores, 'threshold');
  if (!(tpr > 0 && tpr <= 1)) throw new Error(`threshold: tpr ${tpr} must be in (0, 1]`);
  const sorted = Float64Array.from(inScores).sort().reverse();
  // Guard against 0.95·n landing a hair above an integer in floating point.
  const k = Math.max(1, Math.ceil(tpr * sorted.length - 1e-9));
  return sorted[k - 1];
}

/** Fraction of out-of-distribution scores accepted (≥ τ) at the threshold with TPR ≥ `tpr`. */
export function fprAtTpr(inScores: ArrayLike<number>, outScores: ArrayLike<number>, tpr = 0.95) {
  checkScores(outScores, 'fpr negatives');
  const tau = thresholdAtTpr(inScores, tpr);
  let fp = 0;
  for (let i = 0; i < outScores.length; i++) if (outScores[i] >= tau) fp++;
  return fp / outScores.length;
}

/** AUROC, AUPR-in (in = positive), AUPR-out (out = positive, score negated), FPR@95%TPR. */
export function detectionMetrics(
  inScores: ArrayLike<number>,
  outScores: ArrayLike<number>,
): DetectionMetrics {
  return {
    auroc: auroc(inScores, outScores),
    aupr_in: averagePrecision(inScores, outScores),
    aupr_out: averagePrecision(negate(outScores), negate(inScores)),
    fpr95: fprAtTpr(inScores, outScores, 0.95),
  };
}
