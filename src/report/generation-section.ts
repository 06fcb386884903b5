/**
 * Generation (issue 16): per analysed model, x_1 of the reverse ODE against N(0, I), reverse
 * trajectories, sample grids, FID in a classifier's features against K, and OOD score histograms.
 */
import { join } from 'node:path';
import { provenanceTitle } from './charts';
import { NOT_RUN, fmt, short, slug, table } from './format';
import { Json, ReportInput, isObj, numOr, strOr } from './inputs';
import { PAPER_CLAIMS } from './paper';
import { Report } from './writer';

/** x_1 of the reverse ODE against a seeded N(0, I) sample, and the solver's share of the gap. */
function noiseStatsPart(r: Report, j: Json): void {
  const ns = isObj(j.noiseStats) ? j.noiseStats : null;
  if (ns) {
    const ref = isObj(ns.reference) ? ns.reference : {};
    const g = (o: Json, k: string, f: 'mean' | 'maxAbs') =>
      isObj(o[k]) ? numOr((o[k] as Json)[f]) : null;
    r.add(
      `x_1 = reverse ODE (${strOr(ns.solver)}, K = ${String(ns.steps)}) of ${String(ns.n)} images of ${strOr(j.data)}, against a seeded N(0, I) sample of the same size:`,
      '',
      table(
        ['statistic', 'x_1', 'N(0, I) sample', 'ideal'],
        [
          ['mean', fmt(numOr(ns.mean)), fmt(numOr(ref.mean)), '0'],
          ['std', fmt(numOr(ns.std)), fmt(numOr(ref.std)), '1'],
          ...(
            [
              ['per-pixel mean, max |·|', 'pixelMean', 'maxAbs', '0'],
              ['per-pixel std, mean', 'pixelStd', 'mean', '1'],
              ['per-pixel skew, mean', 'pixelSkew', 'mean', '0'],
              ['per-pixel skew, max |·|', 'pixelSkew', 'maxAbs', '0'],
              ['per-pixel excess kurtosis, mean', 'pixelExcessKurtosis', 'mean', '0'],
              ['per-pixel excess kurtosis, max |·|', 'pixelExcessKurtosis', 'maxAbs', '0'],
            ] as const
          ).map(([label, k, f, ideal]) => [label, fmt(g(ns, k, f)), fmt(g(ref, k, f)), ideal]),
          ['KS statistic (pooled values)', fmt(numOr(ns.ks)), fmt(numOr(ref.ks)), '0'],
          // Not 0: the exact flow of a diagonal Gaussian fit, which does end at N(0, I), keeps
          // this much of the image (noise-stats.ts); older analyses lack it.
          [
            'corr(x_0, x_1), mean over images',
            fmt(numOr(ns.correlationWithImage)),
            '—',
            typeof ns.gaussianFlowCorrelation === 'number'
              ? `${fmt(ns.gaussianFlowCorrelation)} (exact flow of a diagonal Gaussian fit)`
              : '—',
          ],
        ],
      ),
    );
    // The solver's share of the gap (noise-stats.ts gaussianFlowSolved); older analyses lack it.
    const gf = isObj(ns.gaussianFlow) ? ns.gaussianFlow : null;
    if (gf && isObj(gf.solved) && isObj(gf.exact))
      r.add(
        '',
        `Without a net: the exact flow of a diagonal Gaussian fit of the same images, integrated by the same solver, ends at std ${fmt(numOr(gf.solved.std))}, KS ${fmt(numOr(gf.solved.ks))}; in closed form at std ${fmt(numOr(gf.exact.std))}, KS ${fmt(numOr(gf.exact.ks))}. The distance between the two is the solver's, whatever the net has learnt.`,
      );
  } else r.add(`Noise statistics: ${NOT_RUN}.`);
}

/** FID in a classifier's features per solver and K, with the test-vs-test floor. */
async function sampleQualityPart(r: Report, j: Json, model: string, commit: string): Promise<void> {
  const sq = isObj(j.sampleQuality) ? j.sampleQuality : null;
  const rows = sq && Array.isArray(sq.rows) ? sq.rows.filter(isObj) : [];
  if (sq && rows.length) {
    r.add(
      `Sample quality: FID in ${strOr(sq.featureModel)} — not Inception FID, comparable only with itself — between ${String(sq.n)} samples (seed ${String(sq.seed)}) and ${String(sq.n)} test images. Floor at this n (test vs other test images): ${fmt(numOr(sq.realVsReal), 2)}.`,
      '',
      table(
        ['solver', 'K', 'FID (classifier features)', `generation s (${String(sq.n)} images)`],
        rows.map((x) => [
          strOr(x.solver),
          String(x.steps),
          fmt(numOr(x.fid), 2),
          fmt(numOr(x.seconds), 1),
        ]),
      ),
    );
    await r.figure(
      `fid-vs-K-${slug(model)}`,
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: provenanceTitle(
          `FID in classifier features vs K: ${model}`,
          `model ${model}`,
          commit,
        ),
        data: {
          values: rows.map((x) => ({
            solver: strOr(x.solver),
            K: numOr(x.steps),
            fid: numOr(x.fid),
          })),
        },
        layer: [
          {
            mark: { type: 'line', point: true },
            encoding: {
              x: {
                field: 'K',
                type: 'quantitative',
                scale: { type: 'log' },
                title: 'steps K (log)',
              },
              y: { field: 'fid', type: 'quantitative', title: 'FID (classifier features)' },
              color: { field: 'solver', type: 'nominal' },
            },
          },
          {
            data: { values: [{ floor: numOr(sq.realVsReal) }] },
            mark: { type: 'rule', strokeDash: [4, 4], color: '#888' },
            encoding: { y: { field: 'floor', type: 'quantitative' } },
          },
        ],
        width: 420,
        height: 240,
      },
      `FID in ${strOr(sq.featureModel)} against K (dashed: test vs test floor); model ${model}.`,
    );
  } else r.add(`Sample quality: ${NOT_RUN}.`);
}

/** Histogram of the primary OOD score, in-distribution against the other data. */
async function oodHistogramPart(r: Report, j: Json, model: string, commit: string): Promise<void> {
  const ood = isObj(j.ood) ? j.ood : null;
  if (ood && Array.isArray(ood.in) && Array.isArray(ood.out)) {
    const inS = ood.in.map((x) => numOr(x)).filter((x): x is number => x !== null);
    const outS = ood.out.map((x) => numOr(x)).filter((x): x is number => x !== null);
    // A long out-of-distribution tail would squeeze every in-distribution score into one bin:
    // the axis spans the in-distribution range widened by 3× its width each side, and scores
    // beyond it are counted in the edge bins (the caption says how many).
    const sorted = [...inS].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    const width = Math.max(1e-9, q(0.995) - q(0.005));
    const lo = q(0.005) - 3 * width;
    const hi = q(0.995) + 3 * width;
    const clamp = (x: number) => Math.min(hi, Math.max(lo, x));
    const beyond = [...inS, ...outS].filter((x) => x < lo || x > hi).length;
    const vals = [
      ...inS.map((s) => ({ set: `in: ${strOr(ood.inData)}`, score: clamp(s) })),
      ...outS.map((s) => ({ set: `out: ${strOr(ood.outData)}`, score: clamp(s) })),
    ];
    await r.figure(
      `ood-hist-${slug(model)}`,
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: provenanceTitle(
          `OOD score ${strOr(ood.score)}: in vs out`,
          `model ${model}`,
          commit,
        ),
        data: { values: vals },
        mark: { type: 'bar', opacity: 0.6 },
        encoding: {
          x: {
            field: 'score',
            type: 'quantitative',
            bin: { maxbins: 40 },
            title: `${strOr(ood.score)} (higher = in-distribution)`,
          },
          y: { aggregate: 'count', type: 'quantitative', stack: null, title: 'images' },
          color: { field: 'set', type: 'nominal', legend: { labelLimit: 400 } },
        },
        width: 420,
        height: 220,
      },
      `Histogram of the primary OOD score (${strOr(ood.score)}) on ${inS.length} images of ${strOr(ood.inData)} and ${outS.length} of ${strOr(ood.outData)}; ${beyond} score(s) outside [${lo.toPrecision(4)}, ${hi.toPrecision(4)}] are counted in the edge bins; model ${model}.`,
    );
  } else r.add(`OOD histograms: ${NOT_RUN}.`);
}

export async function generationSection(r: Report, analyses: ReportInput[]): Promise<void> {
  r.add('## Generation: does the reverse process reach noise, and how good are the samples?');
  r.add(`Paper (${PAPER_CLAIMS.generation.where}): ${PAPER_CLAIMS.generation.claim}`);
  if (!analyses.length) {
    r.add(
      `${NOT_RUN} (\`npx prg analyze --model DIR --data mnist:test --out runs/analysis/NAME ...\`).`,
    );
    return;
  }
  for (const inp of analyses) {
    const j = inp.json;
    const model = strOr(j.model);
    const commit = strOr(j.commit);
    const m = isObj(j.machine) ? j.machine : {};
    r.add(
      `### ${model} (${strOr(j.interpolant)})`,
      `Made by \`${strOr(j.command)}\` at commit ${short(commit)} on ${numOr(m.cpus) ?? '?'} cores ${strOr(m.cpu)}, ${numOr(m.memoryGiB) ?? '?'} GiB, load average ${Array.isArray(m.loadAverage) ? m.loadAverage.join(' ') : '?'} (shared machine).`,
    );
    noiseStatsPart(r, j);

    const tr = isObj(j.trajectories) ? j.trajectories : null;
    if (tr)
      await r.copyImage(
        join(inp.dir, strOr(tr.file)),
        `trajectories-${slug(model)}`,
        `Reverse trajectories of ${String(tr.images)} test images, t = 0 (left) → 1 (right), ${strOr(tr.solver)} K = ${String(tr.steps)}; model ${model}, commit ${short(commit)}.`,
      );

    await sampleQualityPart(r, j, model, commit);

    const samples = Array.isArray(j.samples) ? j.samples.filter(isObj) : [];
    for (const s of samples)
      await r.copyImage(
        join(inp.dir, strOr(s.file)),
        `samples-${slug(model)}-${strOr(s.solver)}-${String(s.steps)}`,
        `${String(s.n)} samples of ${model}, ${strOr(s.solver)} K = ${String(s.steps)}, seed ${String(s.seed)}; commit ${short(commit)}.`,
      );
    if (!samples.length) r.add(`Sample grids: ${NOT_RUN}.`);

    await oodHistogramPart(r, j, model, commit);
  }
}
