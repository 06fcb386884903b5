/**
 * `prg ood-bench` (issue 15): a model's in-distribution test images against a family of outlier
 * sets — the synthetic and transformed sets of outliers.ts, other datasets, user-supplied sets —
 * with every score's AUROC, FPR95 and the fraction flagged at its stored threshold on every set,
 * and each score's worst case and mean.
 *
 * Sets are marked by what the model's fit tuned on (ood.json `fit.primarySelection`): a set
 * whose generator or dataset the primary was chosen on is `tuned`; the rest are held out, and the
 * summary (worst, mean) is given over the held-out sets separately, since only those say how the
 * score does on outliers nobody chose it for.
 */
import { PrgModel } from '../inference';
import { readModelDir } from '../model-dir/io';
import { ImageSet, LabeledImages, checkShape, subsetImages, toLabeledImages } from './data';
import { scoreSet } from './evaluate';
import { LikelihoodOptions } from './likelihood';
import { detectionMetrics } from './metrics';
import { OUTLIER_SETS, OutlierKind } from './outliers';
import {
  BitsPerDim,
  ComplexityRatioScorer,
  LikelihoodScorer,
  ScorerOptions,
  scorersFromStats,
} from './scorers';
import { flaggedFraction } from './selection';
import { parseOodStats } from './stats';

export interface BenchSetInfo {
  name: string;
  kind: OutlierKind;
  /** The model's primary was chosen on this kind of set (or this dataset). */
  tuned: boolean;
  n: number;
}

export interface BenchCell {
  auroc: number;
  fpr95: number;
  /** Fraction flagged (score < the stored threshold); null when the score has no threshold. */
  flagged: number | null;
}

export interface BenchSummary {
  worst_auroc: number;
  worst_set: string;
  mean_auroc: number;
  /** Lowest fraction flagged over the sets (null without a threshold). */
  worst_flagged: number | null;
}

export interface OodBenchReport {
  model: string;
  in: { name: string; n: number; flagged: Record<string, number | null> };
  primary: { score: string; threshold: number } | null;
  sets: BenchSetInfo[];
  /** [score][set]. */
  scores: Record<string, Record<string, BenchCell>>;
  /** Per score, over every set and over the held-out sets only. */
  summary: Record<string, { all: BenchSummary; held_out: BenchSummary | null }>;
  /** Seconds of the main pass (every score but the bits/dim ones) and images it scored. */
  cost: {
    main: { seconds: number; images: number };
    likelihood?: { seconds: number; images: number; seconds_per_image: number; settings: object };
  };
}

export interface OodBenchOptions extends ScorerOptions {
  /** In-distribution images (seeded subset). Default 2000. */
  limit?: number;
  /** Images per outlier set. Default 1000. */
  perSet?: number;
  /** Only these generator names of outliers.ts (default all). */
  synthetic?: string[];
  /**
   * Bits/dim scores: settings to compute them on the first `likelihoodLimit` images of every set
   * (they cost K × stages × probes velocity forward + backward passes per image). Default off.
   */
  likelihood?: Omit<LikelihoodOptions, 'session'>;
  likelihoodLimit?: number;
  batchSize?: number;
  seed?: number;
  onProgress?: (what: string, done: number, total: number) => void;
}

/** The dataset family of a spec or set name: 'mnist:test' → 'mnist'. */
const family = (name: string) => name.split(/[:[(]/)[0];

function summarise(cells: Record<string, BenchCell>, names: string[]): BenchSummary | null {
  if (!names.length) return null;
  let worst = names[0];
  let sum = 0;
  let wf: number | null = null;
  for (const s of names) {
    const c = cells[s];
    if (c.auroc < cells[worst].auroc) worst = s;
    sum += c.auroc;
    if (c.flagged !== null) wf = wf === null ? c.flagged : Math.min(wf, c.flagged);
  }
  return {
    worst_auroc: cells[worst].auroc,
    worst_set: worst,
    mean_auroc: sum / names.length,
    worst_flagged: wf,
  };
}

export async function benchOod(
  modelDir: string,
  inSet: ImageSet,
  extra: { set: ImageSet; kind: 'dataset' | 'user' }[] = [],
  opts: OodBenchOptions = {},
): Promise<OodBenchReport> {
  const loaded = await readModelDir(modelDir);
  const m = loaded.manifest;
  if (!loaded.ood) throw new Error(`${modelDir}: no ood.json (run prg ood-fit first)`);
  const stats = parseOodStats(loaded.ood, `${loaded.dir}/${m.files.ood}`);
  const seed = opts.seed ?? 0;
  const inData = toLabeledImages(inSet);
  checkShape(inData, m.input);
  const ind = subsetImages(inData, opts.limit ?? 2000, seed);
  const perSet = opts.perSet ?? 1000;
  const sel = stats.fit.primarySelection;
  const tunedGenerators = new Set((sel?.sets ?? []).map((s) => family(s.name)));
  const tunedData = sel?.outDataset ? family(sel.outDataset) : undefined;

  const sets: { data: LabeledImages; info: BenchSetInfo }[] = [];
  for (const def of OUTLIER_SETS) {
    if (opts.synthetic && !opts.synthetic.includes(def.name)) continue;
    const data = def.make(ind, perSet, seed + 11);
    sets.push({
      data,
      info: { name: def.name, kind: def.kind, tuned: tunedGenerators.has(def.name), n: data.n },
    });
  }
  for (const e of extra) {
    const d = toLabeledImages(e.set);
    checkShape(d, m.input);
    const data = subsetImages(d, perSet, seed + 1);
    const name = d.name;
    if (sets.some((s) => s.info.name === name))
      throw new Error(`ood-bench: set ${name} given twice`);
    sets.push({
      data,
      info: { name, kind: e.kind, tuned: family(name) === tunedData, n: data.n },
    });
  }

  const so = { device: opts.device, threads: opts.threads };
  const batchSize = opts.batchSize ?? 64;
  const thresholds = m.ood?.scores ?? {};
  const scores: Record<string, Record<string, BenchCell>> = {};
  const inFlagged: Record<string, number | null> = {};
  const record = (
    sIn: Record<string, Float32Array>,
    name: string,
    sOut: Record<string, Float32Array>,
  ) => {
    for (const k of Object.keys(sIn)) {
      const t = thresholds[k]?.threshold;
      const d = detectionMetrics(sIn[k], sOut[k]);
      scores[k] ??= {};
      scores[k][name] = {
        auroc: d.auroc,
        fpr95: d.fpr95,
        flagged: t === undefined ? null : flaggedFraction(sOut[k], t),
      };
      inFlagged[k] = t === undefined ? null : flaggedFraction(sIn[k], t);
    }
  };

  // 1. Every score but the bits/dim ones, on everything.
  const t0 = Date.now();
  const model = new PrgModel(
    loaded,
    so,
    scorersFromStats({ ...stats, likelihood: null }, loaded, { ...so, partial: true }),
  );
  let images = 0;
  try {
    const show = (what: string) => (d: number, t: number) => opts.onProgress?.(what, d, t);
    const sIn = await scoreSet(model, ind, batchSize, show(ind.name));
    images += ind.n;
    for (const s of sets) {
      record(sIn, s.info.name, await scoreSet(model, s.data, batchSize, show(s.info.name)));
      images += s.data.n;
    }
  } finally {
    await model.release();
  }
  const cost: OodBenchReport['cost'] = { main: { seconds: (Date.now() - t0) / 1000, images } };

  // 2. The bits/dim scores on the first likelihoodLimit images of each set, timed on their own.
  if (opts.likelihood) {
    const L = opts.likelihoodLimit ?? 200;
    const bpd = new BitsPerDim(loaded.velocity, { ...opts.likelihood, session: so });
    const { channels, height, width } = m.input;
    const lik = [
      new LikelihoodScorer(bpd),
      new ComplexityRatioScorer(bpd, [channels, height, width]),
    ];
    const lm = new PrgModel(loaded, so, lik);
    const t1 = Date.now();
    let n = 0;
    try {
      const first = (d: LabeledImages) => subsetImages(d, L, seed + 5);
      const inL = first(ind);
      const keep = (r: Record<string, Float32Array>) => ({
        likelihood: r.likelihood,
        complexity_ratio: r.complexity_ratio,
      });
      const sIn = keep(
        await scoreSet(lm, inL, batchSize, (d, t) =>
          opts.onProgress?.(`bits/dim ${inL.name}`, d, t),
        ),
      );
      n += inL.n;
      for (const s of sets) {
        const o = first(s.data);
        record(
          sIn,
          s.info.name,
          keep(
            await scoreSet(lm, o, batchSize, (d, t) =>
              opts.onProgress?.(`bits/dim ${s.info.name}`, d, t),
            ),
          ),
        );
        n += o.n;
      }
    } finally {
      await lm.release();
      await bpd.release();
    }
    const seconds = (Date.now() - t1) / 1000;
    cost.likelihood = {
      seconds,
      images: n,
      seconds_per_image: seconds / n,
      settings: opts.likelihood,
    };
  }

  const summary: OodBenchReport['summary'] = {};
  const all = sets.map((s) => s.info.name);
  const held = sets.filter((s) => !s.info.tuned).map((s) => s.info.name);
  for (const [k, cells] of Object.entries(scores))
    summary[k] = { all: summarise(cells, all)!, held_out: summarise(cells, held) };
  const p = m.ood?.primary;
  return {
    model: `${m.name}@${m.version}`,
    in: { name: ind.name, n: ind.n, flagged: inFlagged },
    primary:
      p !== undefined && thresholds[p] ? { score: p, threshold: thresholds[p].threshold } : null,
    sets: sets.map((s) => s.info),
    scores,
    summary,
    cost,
  };
}

/** Short column names for the table. */
const SHORT: Record<string, string> = {
  uniform_noise: 'unif',
  smooth_noise: 'smooth',
  constant_mid: 'c-mid',
  low_contrast: 'lowc',
  gaussian_noise: 'gauss',
  salt_pepper: 's&p',
  constant_black: 'black',
  constant_white: 'white',
  inverted: 'invert',
  bright: 'bright',
  rot90: 'rot90',
  vflip: 'vflip',
  hflip: 'hflip',
  shift: 'shift',
  'mnist:test': 'mnist',
  'fashion-mnist:test': 'fashion',
};

/**
 * The tables `prg ood-bench` prints: AUROC, FPR95 and % flagged at the stored threshold, one row
 * per score, one column per set (`*` = tuned on), then worst and mean over the held-out sets.
 */
export function formatBenchTables(r: OodBenchReport): string {
  const cols = r.sets.map((s) => (SHORT[s.name] ?? s.name.slice(0, 12)) + (s.tuned ? '*' : ''));
  const names = Object.keys(r.scores);
  const w = Math.max(9, ...names.map((k) => k.length));
  const cw = cols.map((c) => Math.max(6, c.length));
  const head = (metric: string) =>
    `${metric.padEnd(w)} ` +
    cols.map((c, i) => c.padStart(cw[i])).join(' ') +
    '  worst(held-out)    mean';
  const fmt = (v: number | null, pct: boolean, width: number) =>
    (v === null ? '—' : pct ? (100 * v).toFixed(1) : v.toFixed(3)).padStart(width);
  const table = (metric: string, get: (c: BenchCell) => number | null, pct: boolean) => {
    const lines = [head(metric)];
    for (const k of names) {
      const held = r.sets.filter((s) => !s.tuned).map((s) => get(r.scores[k][s.name]));
      const vals = held.filter((v): v is number => v !== null);
      // The worst case: the highest FPR95, the lowest AUROC or fraction flagged.
      const worstOf = metric === 'FPR95' ? Math.max : Math.min;
      const worst = vals.length ? worstOf(...vals) : null;
      const mean = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
      lines.push(
        `${k.padEnd(w)} ` +
          r.sets
            .map((s, i) => {
              const c = r.scores[k][s.name];
              return fmt(c ? get(c) : null, pct, cw[i]);
            })
            .join(' ') +
          `  ${fmt(worst, pct, 15)}  ${fmt(mean, pct, 6)}`,
      );
    }
    return lines.join('\n');
  };
  const pr = r.primary;
  const lik = r.cost.likelihood;
  return [
    `${r.model}: in ${r.in.name} (n = ${r.in.n}); * = a kind the primary was chosen on`,
    `sets: ${r.sets.map((s) => `${s.name} (${s.kind}, n = ${s.n})`).join(', ')}`,
    '',
    table('AUROC', (c) => c.auroc, false),
    '',
    table('FPR95', (c) => c.fpr95, false),
    '',
    table('% flagged', (c) => c.flagged, true),
    '',
    `in-distribution flagged at the stored thresholds: ` +
      names
        .map(
          (k) =>
            `${k} ${r.in.flagged[k] === null ? '—' : (100 * r.in.flagged[k]!).toFixed(1) + ' %'}`,
        )
        .join(', '),
    pr
      ? `served primary: ${pr.score} (threshold ${pr.threshold.toPrecision(6)}); worst held-out AUROC ` +
        `${r.summary[pr.score]?.held_out?.worst_auroc.toFixed(4) ?? '—'} (${r.summary[pr.score]?.held_out?.worst_set ?? '—'})`
      : 'no served primary',
    `cost: ${r.cost.main.images} images in ${r.cost.main.seconds.toFixed(1)} s without bits/dim` +
      (lik
        ? `; bits/dim ${lik.images} images in ${lik.seconds.toFixed(1)} s = ${lik.seconds_per_image.toFixed(3)} s/image`
        : ''),
  ].join('\n');
}
