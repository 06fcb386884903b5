/**
 * Range checks for fine-tune hyperparameters (FineTuneHyperparameters in src/prg/training/job-api.ts),
 * done before a job is queued so a bad value is a 400, not a failed job. Every problem is listed.
 */
import type { FineTuneHyperparameters } from '../../prg/training/job-api';

type Check = (v: unknown) => string | null;

const int =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
      ? null
      : `an integer in [${min}, ${max}]`;
const num =
  (min: number, max: number, openMin = false): Check =>
  (v) =>
    typeof v === 'number' && Number.isFinite(v) && (openMin ? v > min : v >= min) && v <= max
      ? null
      : `a number in ${openMin ? '(' : '['}${min}, ${max}]`;
const oneOf =
  (...allowed: string[]): Check =>
  (v) =>
    typeof v === 'string' && allowed.includes(v) ? null : `one of ${allowed.join(', ')}`;
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'true or false');

export interface HyperparameterLimits {
  maxEpochs: number;
  maxSteps: number;
}

export function hyperparameterChecks(
  l: HyperparameterLimits,
): Record<keyof FineTuneHyperparameters, Check> {
  return {
    epochs: int(1, l.maxEpochs),
    batchSize: int(1, 4096),
    learningRate: num(0, 1, true),
    weightDecay: num(0, 1),
    warmupEpochs: int(0, l.maxEpochs),
    labelSmoothing: (v) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'a number in [0, 1)'),
    lambdaFlow: num(0, 1000),
    steps: int(1, l.maxSteps),
    tStar: num(0, 1, true),
    solver: oneOf('euler', 'midpoint', 'rk4'),
    gradientMode: oneOf('direct', 'adjoint'),
    freezeFlow: bool,
    seed: int(0, 2 ** 31 - 1),
    allowResize: bool,
  };
}

/** Problems with `raw` (empty when valid); unknown keys are problems too. */
export function hyperparameterProblems(raw: unknown, l: HyperparameterLimits): string[] {
  if (raw === undefined || raw === null) return [];
  if (typeof raw !== 'object' || Array.isArray(raw)) return ['hyperparameters: expected an object'];
  const checks = hyperparameterChecks(l);
  const problems: string[] = [];
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (v === undefined || v === null) continue;
    const check = checks[k as keyof FineTuneHyperparameters];
    if (!check) {
      problems.push(`hyperparameters.${k}: unknown (known: ${Object.keys(checks).join(', ')})`);
      continue;
    }
    const why = check(v);
    if (why) problems.push(`hyperparameters.${k}=${JSON.stringify(v)}: expected ${why}`);
  }
  const h = raw as FineTuneHyperparameters;
  if (
    problems.length === 0 &&
    h.warmupEpochs !== undefined &&
    h.epochs !== undefined &&
    h.warmupEpochs > h.epochs
  )
    problems.push(`hyperparameters.warmupEpochs=${h.warmupEpochs}: more than epochs=${h.epochs}`);
  return problems;
}

/** Drops null/undefined entries (GraphQL sends nulls for absent optional fields). */
export function cleanHyperparameters(raw: unknown): FineTuneHyperparameters {
  if (!raw || typeof raw !== 'object') return {};
  return Object.fromEntries(
    Object.entries(raw as Record<string, unknown>).filter(([, v]) => v !== undefined && v !== null),
  ) as FineTuneHyperparameters;
}
