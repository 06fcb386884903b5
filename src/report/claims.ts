/**
 * Which of the paper's claims hold at this scale: each claim is tested on the ablation results
 * (ablations.ts) by comparing means with their spread over seeds (RESOLVED_RULE), so the verdicts
 * change with the data and none is written by hand.
 */
import {
  AblationKind,
  Comparison,
  RESOLVED_RULE,
  VariantRow,
  compare,
  datasetOf,
  deltaText,
  kindOf,
  referenceOf,
  tStarOf,
  variantsOf,
} from './ablations';
import { NOT_RUN, pct, short } from './format';
import { ReportInput, strOr } from './inputs';
import { PAPER_CLAIMS, PAPER_FROZEN_GAP } from './paper';

export interface ClaimRow {
  claim: string;
  where: string;
  dataset: string;
  ours: string;
  verdict: string;
  /** The recipe and commit the numbers come from. */
  source: string;
}

export { RESOLVED_RULE };

/** Verdict on "a is better than b". */
function better(c: Comparison): string {
  if (c.delta === null) return NOT_RUN;
  if (c.resolved === null) return 'undetermined (fewer than 2 seeds)';
  if (!c.resolved) return 'not resolved (within the seeds’ spread)';
  return c.delta > 0 ? 'holds' : 'does not hold (the opposite is resolved)';
}

/** Verdict on "no setting differs": every comparison within the spread. */
function same(cs: { name: string; c: Comparison }[]): string {
  if (!cs.length || cs.some((x) => x.c.delta === null)) return NOT_RUN;
  const differ = cs.filter((x) => x.c.resolved === true);
  if (differ.length)
    return `does not hold: ${differ.map((x) => `${x.name} ${deltaText(x.c)}`).join('; ')}`;
  if (cs.some((x) => x.c.resolved === null)) return 'undetermined (fewer than 2 seeds)';
  return 'holds (every difference within the seeds’ spread)';
}

const named = (vs: VariantRow[], name: string) => vs.find((v) => v.name === name);

function rowsOf(inp: ReportInput, kind: AblationKind, hasFinetune: Set<string>): ClaimRow[] {
  const vs = variantsOf(inp);
  const ref = named(vs, referenceOf(inp));
  const dataset = datasetOf(inp);
  const source = `${strOr(inp.json.recipe)} @ ${short(inp.json.commit)}`;
  const row = (claim: string, where: string, ours: string, verdict: string): ClaimRow => ({
    claim,
    where,
    dataset,
    ours,
    verdict,
    source,
  });
  const pair = (a?: VariantRow, b?: VariantRow) =>
    `${a?.name ?? '?'} − ${b?.name ?? '?'}: ${deltaText(compare(a, b))}`;
  // Both the fine-tuning and the supervised ablation have a `scratch` variant: one row serves both.
  const pretrainingRow = (scratch?: VariantRow) =>
    row(
      'pretraining beats the same net from random weights',
      PAPER_CLAIMS.pretraining.where,
      pair(ref, scratch),
      better(compare(ref, scratch)),
    );
  switch (kind) {
    case 'finetune': {
      const frozen = named(vs, 'frozen');
      const scratch = named(vs, 'scratch');
      return [
        row(
          'end-to-end fine-tuning beats a frozen flow (head only)',
          PAPER_FROZEN_GAP[0].where,
          pair(ref, frozen),
          better(compare(ref, frozen)),
        ),
        pretrainingRow(scratch),
      ];
    }
    case 'supervised': {
      const sup = named(vs, 'supervised');
      const scratch = named(vs, 'scratch');
      return [
        ...(hasFinetune.has(dataset) ? [] : [pretrainingRow(scratch)]),
        row(
          'PRG beats a supervised classifier (here: the same net and budget, cross-entropy only)',
          PAPER_CLAIMS.supervised.where,
          pair(ref, sup),
          better(compare(ref, sup)),
        ),
      ];
    }
    case 'solver': {
      const evals = vs.filter((v) => v.kind === 'eval');
      const vsRef = (xs: VariantRow[]) => xs.map((v) => ({ name: v.name, c: compare(v, ref) }));
      const solvers = evals.filter((v) => strOr(v.settings.solver) !== 'euler');
      const steps = evals.filter((v) => strOr(v.settings.solver) === 'euler');
      const span = (xs: VariantRow[]) => {
        const ms = [ref, ...xs].map((v) => v?.mean ?? null).filter((m) => m !== null);
        return ms.length
          ? `${ms.length} settings span ${pct(Math.min(...ms))}–${pct(Math.max(...ms))} %`
          : NOT_RUN;
      };
      return [
        row(
          'accuracy does not depend on the solver (vs the trained Euler setting)',
          PAPER_CLAIMS.solvers.where,
          span(solvers),
          same(vsRef(solvers)),
        ),
        row(
          'accuracy is stable across solver steps K (paper: K ≥ 20; here K = 1–20)',
          '§4.3.3, Tab. 1',
          span(steps),
          same(vsRef(steps)),
        ),
      ];
    }
    case 'tstar': {
      const ts = vs
        .map((v) => ({ v, t: tStarOf(v, inp.json) }))
        .filter((x): x is { v: VariantRow; t: number } => x.t !== null && x.v.kind === 'train')
        .sort((a, b) => a.t - b.t);
      if (ts.length < 2)
        return [row('later t* gives better accuracy', PAPER_CLAIMS.tStar.where, NOT_RUN, NOT_RUN)];
      const lo = ts[0];
      const hi = ts[ts.length - 1];
      const best = ts
        .filter((x) => x.v.mean !== null)
        .reduce<(typeof ts)[number] | null>((b, x) => (!b || x.v.mean! > b.v.mean! ? x : b), null);
      return [
        row(
          'later t* gives better accuracy',
          PAPER_CLAIMS.tStar.where,
          `t* ${hi.t} − t* ${lo.t}: ${deltaText(compare(hi.v, lo.v))}; best mean at t* ${best ? best.t : '—'}`,
          better(compare(hi.v, lo.v)),
        ),
      ];
    }
    case 'flows': {
      const cs: { name: string; c: Comparison }[] = [];
      for (let i = 0; i < vs.length; i++)
        for (let j = i + 1; j < vs.length; j++)
          cs.push({ name: `${vs[i].name} − ${vs[j].name}`, c: compare(vs[i], vs[j]) });
      return [
        row(
          'ICFM, OT-CFM and GVP reach comparable accuracy',
          PAPER_CLAIMS.flows.where,
          vs.map((v) => `${v.name} ${v.mean === null ? '—' : pct(v.mean)}`).join(', '),
          same(cs),
        ),
      ];
    }
    case 'lambda': {
      const l0 = named(vs, 'lambda-0');
      return [
        row(
          'the flow-matching term (λ = 1) helps against λ = 0 (the paper tries λ = 1, 10, 100, not 0; values not legible in our copy)',
          PAPER_CLAIMS.lambda.where,
          pair(ref, l0),
          better(compare(ref, l0)),
        ),
      ];
    }
    default:
      return [];
  }
}

/** One row per claim and dataset, in the order of the ablation kinds. */
export function claimRows(ablations: readonly ReportInput[]): ClaimRow[] {
  const hasFinetune = new Set(
    ablations.filter((i) => kindOf(i) === 'finetune').map((i) => datasetOf(i)),
  );
  return ablations.flatMap((inp) => rowsOf(inp, kindOf(inp), hasFinetune));
}
