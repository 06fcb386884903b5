/**
 * `prg ood-eval` and `prg ood-fit` (issue 4, docs/ood.md):
 *
 *   prg ood-fit  --model DIR --data SPEC [--heldout SPEC] [--max-train N] [--max-heldout N]
 *                [--likelihood [--lik-solver S --lik-steps K --probes P --probe KIND]]
 *                [--primary NAME | --select-primary-with SPEC [--max-select N]]
 *                [--shrinkage X] [--json]
 *     Fits the Mahalanobis statistics on SPEC (labelled, in-distribution) and calibrates every
 *     score's threshold at 95 % TPR on the held-out set; writes ood.json and manifest.ood.
 *
 *   prg ood-eval --model DIR --in SPEC --out SPEC [--json] [--limit N] [--no-likelihood ...]
 *     AUROC, AUPR-in, AUPR-out and FPR@95%TPR per score, as a table or one JSON object
 *     {"scores": {"<name>": {"auroc", "aupr_in", "aupr_out", "fpr95"}, ...}, "n_in", "n_out"}.
 */
import { Device } from '../engine/runtime/device';
import { ModelManifest } from '../prg/manifest';
import { readManifest } from '../prg/model-dir/io';
import { evaluateOod, formatOodTable } from '../prg/ood/evaluate';
import { fitOod } from '../prg/ood/fit';
import { LIKELIHOOD_DEFAULTS, LikelihoodSolver, ProbeKind } from '../prg/ood/likelihood';
import { loadDatasetFor } from '../prg/training/evaluate';
import { OptionSpec, UsageError, Values, choice, flag, num, parse, required, str } from './args';

export const COMMON: OptionSpec = {
  threads: { type: 'string' },
  device: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  resize: { type: 'boolean' },
  'batch-size': { type: 'string' },
  seed: { type: 'string' },
  likelihood: { type: 'boolean' },
  'no-likelihood': { type: 'boolean' },
  'lik-solver': { type: 'string' },
  'lik-steps': { type: 'string' },
  probes: { type: 'string' },
  probe: { type: 'string' },
};

export const OOD_HELP = {
  'ood-eval': `prg ood-eval --model DIR --in SPEC --out SPEC [--json] [--limit N] [options]
  Every OOD score of the model on SPEC (in-distribution) vs SPEC (out): AUROC, AUPR-in, AUPR-out,
  FPR@95%TPR. --limit N scores a seeded subset of N images of each set.
  Bits/dim scores (likelihood, complexity_ratio): ood.json's settings by default; --no-likelihood
  skips them; --likelihood adds them with the defaults (midpoint, 6 steps, 1 Rademacher probe),
  changed by --lik-solver euler|midpoint|rk4 --lik-steps K --probes P --probe rademacher|gaussian.
  --batch-size N (64) --seed N --resize --threads N --device cpu|cuda --quiet`,
  'ood-fit': `prg ood-fit --model DIR --data SPEC [--heldout SPEC] [options]
  Fits Mahalanobis statistics (x_t* and the head's hidden layer) on SPEC and sets each score's
  threshold at 95% TPR on held-out in-distribution images (default: a seeded 10% of SPEC).
  --max-train N (10000) --max-heldout N (1000) --primary NAME (mahalanobis) --shrinkage X
  (default Ledoit-Wolf) --tpr X (0.95).
  The primary (unless --primary) is the score with the best worst-case AUROC of the held-out
  images against synthetic validation outliers (uniform and smooth noise, mid-grey constants,
  low-contrast images; --synthetic-per-set N, default 500) and, with --select-primary-with SPEC,
  against SPEC too (--max-select N images, default --max-heldout); use other images than the
  ones you benchmark on. Guard: the primary must flag >= 99 % (--guard-min-flagged X) of the
  noise and constant sets at its own threshold; --guard fallback (default: else the best score
  that does, with a warning) | refuse (else fail) | off. Recorded in ood.json (fit.guard).
  --no-deep skips mahalanobis_deep (two more velocity evaluations per image).
  --likelihood [--lik-* flags as for ood-eval] also calibrates the bits/dim scores (off by
  default: served models then pay their cost on every classify).`,
};

export function sessionOpts(v: Values): { threads?: number; device?: Device } {
  return {
    threads: num(v, 'threads', { int: true, min: 0 }),
    device: choice(v, 'device', ['cpu', 'cuda'] as const),
  };
}

/**
 * undefined = ood.json's settings (eval) or none (fit); false = none; settings = --likelihood
 * (defaults) or any --lik-* / --probe(s) flag.
 */
export function likelihoodOpts(v: Values) {
  if (flag(v, 'likelihood') && flag(v, 'no-likelihood'))
    throw new UsageError('--likelihood and --no-likelihood exclude each other');
  if (flag(v, 'no-likelihood')) return false as const;
  const solver = choice(v, 'lik-solver', ['euler', 'midpoint', 'rk4'] as const);
  const steps = num(v, 'lik-steps', { int: true, min: 1, max: 1000 });
  const probes = num(v, 'probes', { int: true, min: 1, max: 64 });
  const probe = choice(v, 'probe', ['rademacher', 'gaussian'] as const);
  const given = [solver, steps, probes, probe].some((x) => x !== undefined);
  if (!given && !flag(v, 'likelihood')) return undefined;
  const d = LIKELIHOOD_DEFAULTS;
  return {
    ...d,
    solver: (solver ?? d.solver) as LikelihoodSolver,
    steps: steps ?? d.steps,
    probes: probes ?? d.probes,
    probe: (probe ?? d.probe) as ProbeKind,
  };
}

export function progress(quiet: boolean) {
  let last = 0;
  return (what: string, done: number, total: number) => {
    if (quiet) return;
    const now = Date.now();
    if (done < total && now - last < 1000) return;
    last = now;
    process.stderr.write(`\r${what}: ${done}/${total}${done === total ? '\n' : ''}`);
  };
}

export async function load(spec: string, m: ModelManifest, v: Values) {
  return loadDatasetFor(spec, m, { allowResize: flag(v, 'resize') });
}

export async function oodEvalCommand(argv: string[]): Promise<number> {
  const v = parse(
    argv,
    {
      ...COMMON,
      model: { type: 'string' },
      in: { type: 'string' },
      out: { type: 'string' },
      limit: { type: 'string' },
    },
    'ood-eval',
  );
  if (flag(v, 'help')) {
    process.stdout.write(OOD_HELP['ood-eval'] + '\n');
    return 0;
  }
  const dir = required(v, 'model', 'ood-eval');
  const inSpec = required(v, 'in', 'ood-eval');
  const outSpec = required(v, 'out', 'ood-eval');
  const limit = num(v, 'limit', { int: true, min: 1 });
  const batchSize = num(v, 'batch-size', { int: true, min: 1 });
  const seed = num(v, 'seed', { int: true, min: 0 });
  const likelihood = likelihoodOpts(v);
  const so = sessionOpts(v);
  const manifest = await readManifest(dir);
  const [inData, outData] = [await load(inSpec, manifest, v), await load(outSpec, manifest, v)];
  const show = progress(flag(v, 'quiet'));
  const t0 = Date.now();
  const r = await evaluateOod(dir, inData, outData, {
    ...so,
    limit,
    batchSize,
    seed,
    likelihood,
    onProgress: (set, d, t) => show(`scoring ${set === 'in' ? inSpec : outSpec}`, d, t),
  });
  // --json prints exactly the documented object (issue 4); the table adds the mean bits/dim.
  const { scores, n_in, n_out } = r;
  if (flag(v, 'json')) process.stdout.write(JSON.stringify({ scores, n_in, n_out }) + '\n');
  else
    process.stdout.write(
      formatOodTable(
        r,
        `${manifest.name}@${manifest.version}: in ${inSpec}, out ${outSpec} ` +
          `(${((Date.now() - t0) / 1000).toFixed(1)} s)`,
      ) + '\n',
    );
  return 0;
}

const PROGRESS_LABEL = {
  train: 'features of the training images',
  heldout: 'held-out scores',
  select: 'validation out-of-distribution scores',
} as const;

export async function oodFitCommand(argv: string[]): Promise<number> {
  const v = parse(
    argv,
    {
      ...COMMON,
      model: { type: 'string' },
      data: { type: 'string' },
      heldout: { type: 'string' },
      'max-train': { type: 'string' },
      'max-heldout': { type: 'string' },
      primary: { type: 'string' },
      'select-primary-with': { type: 'string' },
      'max-select': { type: 'string' },
      shrinkage: { type: 'string' },
      tpr: { type: 'string' },
      guard: { type: 'string' },
      'guard-min-flagged': { type: 'string' },
      'synthetic-per-set': { type: 'string' },
      'no-deep': { type: 'boolean' },
    },
    'ood-fit',
  );
  if (flag(v, 'help')) {
    process.stdout.write(OOD_HELP['ood-fit'] + '\n');
    return 0;
  }
  const dir = required(v, 'model', 'ood-fit');
  const spec = required(v, 'data', 'ood-fit');
  const heldSpec = str(v, 'heldout');
  if (heldSpec === spec)
    throw new UsageError(
      'prg ood-fit: --heldout must differ from --data (thresholds need unseen images)',
    );
  // Usage errors before any dataset is loaded.
  const selectSpec = str(v, 'select-primary-with');
  if (selectSpec !== undefined && str(v, 'primary') !== undefined)
    throw new UsageError('prg ood-fit: give --primary or --select-primary-with, not both');
  if (selectSpec !== undefined && (selectSpec === spec || selectSpec === heldSpec))
    throw new UsageError(
      'prg ood-fit: --select-primary-with must be out-of-distribution images, not --data or --heldout',
    );
  const manifest = await readManifest(dir);
  const train = await load(spec, manifest, v);
  const held = heldSpec ? await load(heldSpec, manifest, v) : undefined;
  const select = selectSpec ? await load(selectSpec, manifest, v) : undefined;
  const show = progress(flag(v, 'quiet'));
  const t0 = Date.now();
  const r = await fitOod(dir, train, held, {
    ...sessionOpts(v),
    maxTrain: num(v, 'max-train', { int: true, min: 2 }),
    maxHeldout: num(v, 'max-heldout', { int: true, min: 1 }),
    batchSize: num(v, 'batch-size', { int: true, min: 1 }),
    seed: num(v, 'seed', { int: true, min: 0 }),
    tpr: num(v, 'tpr', { min: 0, max: 1, exclusiveMin: true }),
    shrinkage: num(v, 'shrinkage', { min: 0, max: 1 }),
    primary: str(v, 'primary'),
    selectPrimaryWith: select,
    maxSelect: num(v, 'max-select', { int: true, min: 1 }),
    likelihood: likelihoodOpts(v),
    guard: choice(v, 'guard', ['fallback', 'refuse', 'off'] as const),
    guardMinFlagged: num(v, 'guard-min-flagged', { min: 0, max: 1 }),
    syntheticPerSet: num(v, 'synthetic-per-set', { int: true, min: 1 }),
    deep: flag(v, 'no-deep') ? false : undefined,
    onProgress: (stage, d, t) => show(PROGRESS_LABEL[stage], d, t),
    // The guard's warning goes to stderr even with --json or --quiet: it must not go unseen.
    onWarning: (msg) => process.stderr.write(`\n*** WARNING: ${msg} ***\n\n`),
  });
  const rec = { ...r, seconds: (Date.now() - t0) / 1000 };
  if (flag(v, 'json')) process.stdout.write(JSON.stringify(rec) + '\n');
  else {
    const sel = r.primarySelection;
    const g = r.guard;
    const setNames = sel?.sets.map((x) => x.name) ?? [];
    const lines = Object.entries(r.thresholds).map(
      ([k, t]) =>
        `  ${k.padEnd(28)} flagged below ${t.threshold.toPrecision(6).padEnd(12)}` +
        (sel
          ? ` validation AUROC worst ${Math.min(...Object.values(sel.aurocBySet[k] ?? {})).toFixed(4)}` +
            ` (${setNames.map((n) => sel.aurocBySet[k]?.[n]?.toFixed(3) ?? '—').join(' ')})`
          : '') +
        (g ? `${g.passing.includes(k) ? '' : '  fails the guard'}` : ''),
    );
    if (sel)
      lines.push(
        `validation sets (AUROC columns): ${setNames.join(', ')}`,
        `primary ${sel.chosen}: ${sel.criterion}, among the scores that pass the guard; ` +
          `${sel.nIn} held-out images`,
      );
    if (g)
      lines.push(
        `guard: ${g.requested} flags ` +
          g.sets
            .map(
              (x) => `${(100 * (g.flagged[g.requested]?.[x.name] ?? 0)).toFixed(1)} % of ${x.name}`,
            )
            .join(', ') +
          ` at its threshold (needs ≥ ${100 * g.minFlagged} %): ${g.action}`,
      );
    process.stdout.write(
      `fitted OOD statistics on ${r.nTrain} images, thresholds at ${100 * (Object.values(r.thresholds)[0]?.tpr ?? 0.95)}% TPR ` +
        `on ${r.nHeldout} held-out images (primary ${r.primary}, ${rec.seconds.toFixed(1)} s) → ${r.modelDir}\n` +
        lines.join('\n') +
        '\n',
    );
  }
  return 0;
}
