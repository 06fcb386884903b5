/**
 * Choosing the served primary OOD score, and the fit-time guard (issue 15, docs/ood.md).
 *
 * Selection: every candidate score's AUROC of held-out in-distribution images against each
 * validation outlier set (outliers.ts, role 'validation', plus any user-supplied set); the primary
 * is the score with the best WORST-CASE AUROC over those sets, exact ties broken by the
 * mean. A worst case, not a mean, because a client reads `flagged: false` as "looks like the
 * training data" whatever kind of outlier it sent; one kind the score inverts is enough to break
 * that.
 *
 * Guard: at its own stored threshold, the primary must flag at least `minFlagged` of each guard
 * set (noise and constant images). Scores that fail are not eligible; when the requested or
 * selected primary fails, the fit refuses or falls back to the best eligible score, and says so.
 */
import { auroc } from './metrics';

export const SELECTION_CRITERION = 'worst-case AUROC over the validation outlier sets (ties: mean)';

/** Fraction of `xs` below `t` (flagged: score < threshold). */
export function flaggedFraction(xs: ArrayLike<number>, t: number): number {
  let k = 0;
  for (let i = 0; i < xs.length; i++) if (xs[i] < t) k++;
  return k / xs.length;
}

export interface ValidationSetScores {
  name: string;
  kind: string;
  n: number;
  scores: Record<string, ArrayLike<number>>;
}

export interface RobustSelection {
  chosen: string;
  /** Worst-case AUROC per eligible candidate (the criterion). */
  auroc: Record<string, number>;
  meanAuroc: Record<string, number>;
  /** AUROC of every candidate on every validation set. */
  aurocBySet: Record<string, Record<string, number>>;
}

/** AUROC of every candidate on every set: [score][set]. */
export function aurocTable(
  heldout: Record<string, ArrayLike<number>>,
  sets: ValidationSetScores[],
  names: string[],
): Record<string, Record<string, number>> {
  const t: Record<string, Record<string, number>> = {};
  for (const k of names) {
    if (!heldout[k] || sets.some((s) => !s.scores[k])) continue;
    t[k] = {};
    for (const s of sets) t[k][s.name] = auroc(heldout[k], s.scores[k]);
  }
  return t;
}

/**
 * The candidate (among `eligible`) with the best worst-case AUROC over `sets`, exact ties broken
 * by the mean, then by `eligible` order.
 */
export function selectRobust(
  heldout: Record<string, ArrayLike<number>>,
  sets: ValidationSetScores[],
  eligible: string[],
): RobustSelection {
  if (!sets.length) throw new Error('primary selection: no validation outlier sets');
  const bySet = aurocTable(heldout, sets, eligible);
  const worst: Record<string, number> = {};
  const mean: Record<string, number> = {};
  let chosen = '';
  for (const k of eligible) {
    const row = bySet[k];
    if (!row) continue;
    const v = Object.values(row);
    worst[k] = Math.min(...v);
    mean[k] = v.reduce((a, b) => a + b, 0) / v.length;
    if (
      !chosen ||
      worst[k] > worst[chosen] ||
      (worst[k] === worst[chosen] && mean[k] > mean[chosen])
    )
      chosen = k;
  }
  if (!chosen) throw new Error('primary selection: no score to choose from');
  return { chosen, auroc: worst, meanAuroc: mean, aurocBySet: bySet };
}

/** What the guard found, recorded in ood.json (`fit.guard`). */
export interface GuardRecord {
  /** Each guard set must be flagged at least this often at the score's stored threshold. */
  minFlagged: number;
  sets: { name: string; n: number }[];
  /** Fraction flagged at the stored threshold: [score][set]. */
  flagged: Record<string, Record<string, number>>;
  /** Scores that flag every guard set often enough. */
  passing: string[];
  /** The primary asked for (given, selected, or the default) before the guard. */
  requested: string;
  /**
   * 'kept': it passed; 'fallback': replaced by `primary`; 'failed': nothing passed, kept anyway;
   * 'refused': the fit stopped (guard 'refuse'; never written to ood.json).
   */
  action: 'kept' | 'fallback' | 'failed' | 'refused';
  primary: string;
}

/** Flagged fractions of every score on every guard set, and the scores that pass. */
export function guardCheck(
  thresholds: Record<string, { threshold: number }>,
  sets: ValidationSetScores[],
  minFlagged: number,
): Pick<GuardRecord, 'flagged' | 'passing' | 'minFlagged' | 'sets'> {
  const flagged: Record<string, Record<string, number>> = {};
  const passing: string[] = [];
  for (const [k, t] of Object.entries(thresholds)) {
    if (sets.some((s) => !s.scores[k])) continue;
    flagged[k] = {};
    for (const s of sets) flagged[k][s.name] = flaggedFraction(s.scores[k], t.threshold);
    if (Object.values(flagged[k]).every((f) => f >= minFlagged)) passing.push(k);
  }
  return { flagged, passing, minFlagged, sets: sets.map((s) => ({ name: s.name, n: s.n })) };
}

/** A readable warning for a primary that failed the guard. */
export function guardMessage(g: GuardRecord): string {
  const f = g.flagged[g.requested] ?? {};
  const fails = Object.entries(f)
    .filter(([, v]) => v < g.minFlagged)
    .map(([s, v]) => `${s} ${(100 * v).toFixed(1)} %`)
    .join(', ');
  const head =
    `OOD guard: primary ${g.requested} flags too few simple synthetic outliers at its own ` +
    `threshold (${fails}; needs ≥ ${(100 * g.minFlagged).toFixed(0)} %)`;
  if (g.action === 'fallback') return `${head}; falling back to ${g.primary}`;
  if (g.action === 'refused')
    return `${head}; refused (guard 'refuse'; scores that pass: ${g.passing.join(', ') || 'none'})`;
  return `${head}; no score passes the guard, keeping ${g.primary} — its flag misses noise`;
}
