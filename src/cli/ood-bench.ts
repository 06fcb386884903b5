/**
 * `prg ood-bench` (issue 15, docs/ood.md "Outlier suite"):
 *
 *   prg ood-bench --model DIR --in SPEC [--other SPEC]... [--out SPEC]... [--json] [options]
 *
 * Every OOD score of the model on SPEC (in-distribution test images) against the synthetic and
 * transformed outlier sets of src/prg/ood/outliers.ts, the other datasets (--other) and
 * user-supplied sets (--out): AUROC, FPR95 and the fraction flagged at the stored threshold, per
 * score and set, with each score's worst case and mean over the sets its primary was not chosen on.
 */
import { readManifest } from '../prg/model-dir/io';
import { benchOod, formatBenchTables } from '../prg/ood/bench';
import { OUTLIER_SETS } from '../prg/ood/outliers';
import { UsageError, flag, num, parse, required, str } from './args';
import { COMMON, likelihoodOpts, load, progress, sessionOpts } from './ood-eval';

export const OOD_BENCH_HELP = `prg ood-bench --model DIR --in SPEC [--other SPEC]... [--out SPEC]... [options]
  The outlier suite: the model's in-distribution images (SPEC, e.g. fashion-mnist:test) against
  synthetic noise (uniform, smooth, Gaussian, salt-and-pepper), constant images (mid-grey, black,
  white), photometric transforms (low contrast, inversion, brightening) and geometric transforms
  (rot90, vflip, hflip, shift: near-OOD) of those images, other datasets (--other, repeatable)
  and your own sets (--out, repeatable). Per score and set: AUROC, FPR95, % flagged at the stored
  threshold; per score: worst case and mean over the sets the primary was not chosen on (sets it
  was chosen on are marked *).
  --limit N in-distribution images (2000) --per-set N images per outlier set (1000)
  --synthetic a,b,... only these generated sets (${OUTLIER_SETS.map((s) => s.name).join(', ')})
  --likelihood [--lik-solver S --lik-steps K --probes P --probe KIND] adds the bits/dim scores
  (likelihood, complexity_ratio) on the first --likelihood-limit N (200) images of each set, with
  their cost per image. --json prints the report object. --batch-size N --seed N --resize
  --threads N --device cpu|cuda --quiet`;

export async function oodBenchCommand(argv: string[]): Promise<number> {
  const v = parse(
    argv,
    {
      ...COMMON,
      model: { type: 'string' },
      in: { type: 'string' },
      other: { type: 'string', multiple: true },
      out: { type: 'string', multiple: true },
      limit: { type: 'string' },
      'per-set': { type: 'string' },
      synthetic: { type: 'string' },
      'likelihood-limit': { type: 'string' },
    },
    'ood-bench',
  );
  if (flag(v, 'help')) {
    process.stdout.write(OOD_BENCH_HELP + '\n');
    return 0;
  }
  const dir = required(v, 'model', 'ood-bench');
  const inSpec = required(v, 'in', 'ood-bench');
  const list = (name: string) =>
    ((v as Record<string, unknown>)[name] as string[] | undefined) ?? [];
  const synthetic = str(v, 'synthetic')
    ?.split(',')
    .map((s) => s.trim());
  for (const s of synthetic ?? [])
    if (!OUTLIER_SETS.some((d) => d.name === s))
      throw new UsageError(
        `prg ood-bench: --synthetic ${s}: use names from ${OUTLIER_SETS.map((d) => d.name).join(', ')}`,
      );
  const specs = [...list('other'), ...list('out')];
  if (specs.includes(inSpec))
    throw new UsageError('prg ood-bench: an outlier set must not be the --in set');
  const likelihood = likelihoodOpts(v);
  if (likelihood === undefined && str(v, 'likelihood-limit') !== undefined)
    throw new UsageError('prg ood-bench: --likelihood-limit needs --likelihood');
  const limit = num(v, 'limit', { int: true, min: 2 });
  const perSet = num(v, 'per-set', { int: true, min: 2 });
  const likelihoodLimit = num(v, 'likelihood-limit', { int: true, min: 2 });
  const manifest = await readManifest(dir);
  const inData = await load(inSpec, manifest, v);
  const extra = [
    ...(await Promise.all(
      list('other').map(async (s) => ({
        set: await load(s, manifest, v),
        kind: 'dataset' as const,
      })),
    )),
    ...(await Promise.all(
      list('out').map(async (s) => ({ set: await load(s, manifest, v), kind: 'user' as const })),
    )),
  ];
  const show = progress(flag(v, 'quiet'));
  const r = await benchOod(dir, inData, extra, {
    ...sessionOpts(v),
    limit,
    perSet,
    synthetic,
    likelihood: likelihood || undefined,
    likelihoodLimit,
    batchSize: num(v, 'batch-size', { int: true, min: 1 }),
    seed: num(v, 'seed', { int: true, min: 0 }),
    onProgress: (what, d, t) => show(`scoring ${what}`, d, t),
  });
  process.stdout.write((flag(v, 'json') ? JSON.stringify(r) : formatBenchTables(r)) + '\n');
  return 0;
}
