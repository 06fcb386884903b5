/**
 * `prg ood-eval`: every OOD score of a model on an in-distribution and an out-of-distribution
 * set, with AUROC, AUPR-in, AUPR-out and FPR@95%TPR per score (metrics.ts).
 */
import { PrgModel } from '../inference';
import { readModelDir } from '../model-dir/io';
import {
  ImageSet,
  LabeledImages,
  imageBatches,
  checkShape,
  subsetImages,
  toLabeledImages,
} from './data';
import { LikelihoodOptions } from './likelihood';
import { DetectionMetrics, detectionMetrics } from './metrics';
import { ScorerOptions, scorersFromStats } from './scorers';
import { OOD_SCHEMA, OodStatsFile, parseOodStats } from './stats';

export interface OodEvalOptions extends ScorerOptions {
  /** At most this many images of each set (seeded subset). */
  limit?: number;
  batchSize?: number;
  /**
   * Bits/dim settings: undefined = those in ood.json (none when the model has no ood.json),
   * false = skip the likelihood scores, an object = these settings.
   */
  likelihood?: false | Omit<LikelihoodOptions, 'session'>;
  seed?: number;
  onProgress?: (set: 'in' | 'out', done: number, total: number) => void;
}

export interface OodEvalReport {
  scores: Record<string, DetectionMetrics>;
  n_in: number;
  n_out: number;
  /** Mean bits/dim of each set (= −mean of the likelihood score), when it was computed. */
  bits_per_dim?: { in: number; out: number };
  /**
   * The model's primary score (manifest.ood) at its stored threshold: the fractions of each set a
   * client would see `flagged: true` — what serving does, unlike the threshold-free metrics.
   */
  primary?: { score: string; threshold: number; in_flagged: number; out_flagged: number };
}

/** Fraction of `xs` below `t` (flagged: score < threshold). */
function flaggedFraction(xs: Float32Array, t: number): number {
  let k = 0;
  for (const v of xs) if (v < t) k++;
  return k / xs.length;
}

/** Throws when `signal` is aborted (fitOod's signal: a cancelled fine-tune job). */
export function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new Error('OOD fit cancelled');
}

/**
 * Every OOD score of every image of `d`, through the model's scorers exactly as inference computes
 * them (ood-eval, and fitOod's held-out and validation sets). `signal` stops it between batches.
 */
export async function scoreSet(
  model: PrgModel,
  d: LabeledImages,
  batchSize: number,
  progress?: (done: number, total: number) => void,
  signal?: AbortSignal,
): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  for (const b of imageBatches(d, batchSize)) {
    checkAbort(signal);
    const s = await model.oodScores(b);
    for (const [k, v] of Object.entries(s)) {
      out[k] ??= new Float32Array(d.n);
      out[k].set(v, b.start);
    }
    progress?.(b.start + b.n, d.n);
  }
  return out;
}

export async function evaluateOod(
  modelDir: string,
  inSet: ImageSet,
  outSet: ImageSet,
  opts: OodEvalOptions = {},
): Promise<OodEvalReport> {
  const inData = toLabeledImages(inSet);
  const outData = toLabeledImages(outSet);
  const loaded = await readModelDir(modelDir);
  checkShape(inData, loaded.manifest.input);
  checkShape(outData, loaded.manifest.input);
  const seed = opts.seed ?? 0;
  const ind = subsetImages(inData, opts.limit, seed);
  const outd = subsetImages(outData, opts.limit, seed + 1);
  let stats: OodStatsFile = loaded.ood
    ? parseOodStats(loaded.ood, `${loaded.dir}/${loaded.manifest.files.ood}`)
    : {
        schema: OOD_SCHEMA,
        mahalanobis: {},
        likelihood: null,
        fit: {
          train: { dataset: '', n: 0 },
          heldout: { dataset: '', n: 0 },
          tpr: 0.95,
          fittedAt: '',
          command: '',
        },
      };
  if (opts.likelihood === false) stats = { ...stats, likelihood: null };
  else if (opts.likelihood) stats = { ...stats, likelihood: opts.likelihood };
  const so = { device: opts.device, threads: opts.threads };
  const model = new PrgModel(loaded, so, scorersFromStats(stats, loaded, { ...so, partial: true }));
  const batchSize = opts.batchSize ?? 64;
  try {
    const sIn = await scoreSet(model, ind, batchSize, (d, t) => opts.onProgress?.('in', d, t));
    const sOut = await scoreSet(model, outd, batchSize, (d, t) => opts.onProgress?.('out', d, t));
    const scores: Record<string, DetectionMetrics> = {};
    for (const k of Object.keys(sIn)) scores[k] = detectionMetrics(sIn[k], sOut[k]);
    const r: OodEvalReport = { scores, n_in: ind.n, n_out: outd.n };
    const mean = (xs: Float32Array) => xs.reduce((a, b) => a + b, 0) / xs.length;
    if (sIn.likelihood) r.bits_per_dim = { in: -mean(sIn.likelihood), out: -mean(sOut.likelihood) };
    const p = loaded.manifest.ood?.primary;
    const t = p === undefined ? undefined : loaded.manifest.ood?.scores[p]?.threshold;
    if (p !== undefined && t !== undefined && sIn[p])
      r.primary = {
        score: p,
        threshold: t,
        in_flagged: flaggedFraction(sIn[p], t),
        out_flagged: flaggedFraction(sOut[p], t),
      };
    return r;
  } finally {
    await model.release();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

/** The table `prg ood-eval` prints without --json. */
export function formatOodTable(r: OodEvalReport, title = ''): string {
  const rows = Object.entries(r.scores);
  const w = Math.max(5, ...rows.map(([k]) => k.length));
  const f = (x: number) => x.toFixed(4).padStart(8);
  const lines = [
    ...(title ? [title] : []),
    `${'score'.padEnd(w)}  ${'AUROC'.padStart(8)}  ${'AUPR-in'.padStart(8)}  ${'AUPR-out'.padStart(8)}  ${'FPR95'.padStart(8)}`,
    ...rows.map(
      ([k, m]) => `${k.padEnd(w)}  ${f(m.auroc)}  ${f(m.aupr_in)}  ${f(m.aupr_out)}  ${f(m.fpr95)}`,
    ),
    `n_in = ${r.n_in}, n_out = ${r.n_out}`,
    ...(r.bits_per_dim
      ? [`mean bits/dim: in ${r.bits_per_dim.in.toFixed(3)}, out ${r.bits_per_dim.out.toFixed(3)}`]
      : []),
    ...(r.primary
      ? [
          `primary ${r.primary.score} at its stored threshold ${r.primary.threshold.toPrecision(6)}: ` +
            `flags ${pct(r.primary.in_flagged)} of in, ${pct(r.primary.out_flagged)} of out`,
        ]
      : []),
  ];
  return lines.join('\n');
}
