/**
 * Reading the `ablation` block of a results file (src/prg/recipes/ablate.ts) for the report: its
 * variants with mean ± std over seeds, which question it answers (its kind), and the comparison
 * of two variants that the tables and the claims summary use.
 */
import { Json, ReportInput, isObj, numOr, strOr } from './inputs';
import { NOT_RUN, pct } from './format';

export interface VariantRow {
  recipe: string;
  commit: string;
  name: string;
  label: string;
  kind: string;
  settings: Json;
  mean: number | null;
  std: number | null;
  n: number;
  /** Test accuracy per seed, in the order the file lists them. */
  values: number[];
}

export function variantsOf(inp: ReportInput): VariantRow[] {
  const a = isObj(inp.json.ablation) ? inp.json.ablation : {};
  const vs = Array.isArray(a.variants) ? a.variants : [];
  return vs.filter(isObj).map((v) => {
    const acc = isObj(v.testAccuracy) ? v.testAccuracy : {};
    const runs = Array.isArray(v.runs) ? v.runs.filter(isObj) : [];
    return {
      recipe: strOr(inp.json.recipe),
      commit: strOr(inp.json.commit),
      name: strOr(v.name),
      label: strOr(v.label, strOr(v.name)),
      kind: strOr(v.kind),
      settings: isObj(v.settings) ? v.settings : {},
      mean: numOr(acc.mean),
      std: numOr(acc.std),
      n: numOr(acc.n, runs.length) ?? 0,
      values: runs.map((x) => numOr(x.testAccuracy)).filter((x): x is number => x !== null),
    };
  });
}

/** "mean ± std (n = k)" in percent, or "not run yet". */
export const meanStd = (v: VariantRow | undefined) =>
  !v || v.mean === null
    ? NOT_RUN
    : `${pct(v.mean)}${v.std === null ? '' : ` ± ${pct(v.std)}`} (n = ${v.n})`;

/** The questions of src/prg/recipes/ablations.ts, in the report's order. */
export const KINDS = ['solver', 'tstar', 'flows', 'finetune', 'supervised', 'lambda'] as const;
export type AblationKind = (typeof KINDS)[number] | 'other';

/** The question an ablation answers, from its recipe name ablate-<kind>-<dataset>[-smoke]. */
export function kindOf(inp: ReportInput): AblationKind {
  const m = /^ablate-([a-z]+)-/.exec(strOr(inp.json.recipe));
  return m && (KINDS as readonly string[]).includes(m[1]) ? (m[1] as AblationKind) : 'other';
}

/** The dataset an ablation trains on ("mnist" from ablation.train "mnist:train"). */
export function datasetOf(inp: ReportInput): string {
  const a = isObj(inp.json.ablation) ? inp.json.ablation : {};
  return strOr(a.train, '?').split(':')[0];
}

export const referenceOf = (inp: ReportInput): string =>
  strOr(isObj(inp.json.ablation) ? inp.json.ablation.reference : undefined);

/** The seeds' spread rule every comparison in the report uses (stated in the report). */
export const RESOLVED_RULE =
  'a difference between two settings counts as resolved when their means differ by more than the sum of their standard deviations over seeds (each measured with at least 2 seeds); otherwise it is within the seeds’ spread';

export interface Comparison {
  /** a − b in accuracy (fraction); null when either is not measured. */
  delta: number | null;
  /** RESOLVED_RULE; null when either has fewer than 2 seeds. */
  resolved: boolean | null;
}

export function compare(a: VariantRow | undefined, b: VariantRow | undefined): Comparison {
  if (!a || !b || a.mean === null || b.mean === null) return { delta: null, resolved: null };
  const delta = a.mean - b.mean;
  if (a.n < 2 || b.n < 2 || a.std === null || b.std === null) return { delta, resolved: null };
  return { delta, resolved: Math.abs(delta) > a.std + b.std };
}

/** "+0.26 points (within spread)", in accuracy points. */
export function deltaText(c: Comparison): string {
  if (c.delta === null) return '—';
  const d = `${c.delta >= 0 ? '+' : '−'}${pct(Math.abs(c.delta))}`;
  return `${d} (${c.resolved === null ? 'one seed' : c.resolved ? 'resolved' : 'within spread'})`;
}

/** t* of a train variant: its own fine-tuning setting, else the recipe's. */
export function tStarOf(v: VariantRow, recipe: Json): number | null {
  const ft = isObj(v.settings.finetune) ? v.settings.finetune : {};
  const settings = isObj(recipe.settings) ? recipe.settings : {};
  const rf =
    isObj(settings.finetune) && isObj(settings.finetune.hyperparameters)
      ? settings.finetune.hyperparameters
      : {};
  return (
    numOr(ft.tStar) ?? numOr(v.settings.tStar) ?? (v.kind === 'train' ? numOr(rf.tStar) : null)
  );
}
