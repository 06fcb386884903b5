/**
 * Fit-and-calibrate: the step the CLI and every fine-tuning job run on a finished model.
 *
 * 1. Extract the head's input x_{t*} (the model's own setting) and the head's hidden layer on
 *    (a seeded subset of) the labelled training set; fit a class-conditional Gaussian with a tied,
 *    shrunk covariance to each, and one class-agnostic Gaussian for the relative scores
 *    (mahalanobis.ts).
 * 2. Score held-out in-distribution images with every scorer, exactly as inference will
 *    (PrgModel.oodScores with these scorers), and set each threshold at 95 % TPR: the largest τ
 *    with at least 95 % of held-out scores ≥ τ. Held-out images must not be training images;
 *    without a held-out set, a seeded disjoint part of the training set is held out.
 * 3. Write ood.json (manifest.files.ood) and the thresholds (manifest.ood) into the model
 *    directory, atomically (writeModelDir).
 */
import { OodScoreThreshold } from '../manifest';
import { PrgModel } from '../inference';
import { readManifest, readModelDir, writeModelDir, DEFAULT_FILES } from '../model-dir/io';
import { commandLine } from '../model-dir/provenance';
import { loadDatasetFor } from '../training/evaluate';
import {
  ImageSet,
  imageBatches,
  checkShape,
  modelLabels,
  splitHeldout,
  subsetImages,
  toLabeledImages,
} from './data';
import { checkAbort, scoreSet } from './evaluate';
import { LIKELIHOOD_DEFAULTS, LikelihoodOptions } from './likelihood';
import { fitBackgroundGaussian, fitTiedGaussian, tiedGaussianToJson } from './mahalanobis';
import { auroc, thresholdAtTpr } from './metrics';
import {
  ENSEMBLE_COMPONENTS,
  HeadHidden,
  ScorerOptions,
  ensembleOf,
  fitEnsemble,
  scorersFromStats,
} from './scorers';
import { OOD_SCHEMA, OodStatsFile, PrimarySelection } from './stats';

export interface FitOodOptions extends ScorerOptions {
  /** Training images used for the class means and covariance (seeded subset). Default 10000. */
  maxTrain?: number;
  /** Held-out images used for the thresholds. Default 1000. */
  maxHeldout?: number;
  batchSize?: number;
  /** Calibration true-positive rate. Default 0.95. */
  tpr?: number;
  /**
   * Bits/dim scores (`likelihood`, `complexity_ratio`): true = LIKELIHOOD_DEFAULTS, or settings.
   * Default off: they cost one forward + backward pass of the velocity net per solver stage and
   * probe, on every scored image — also at serving time, where every classify computes the
   * model's OOD scores (docs/ood.md, "Cost").
   */
  likelihood?: boolean | Omit<LikelihoodOptions, 'session'>;
  /** Fixed shrinkage α; default Ledoit–Wolf. */
  shrinkage?: number;
  /** The score clients see first (manifest.ood.primary). Default 'mahalanobis'. */
  primary?: string;
  /**
   * Choose the primary score on data: the score with the highest AUROC of the held-out
   * in-distribution images against these validation out-of-distribution images (the recipe of
   * Lee et al. 2018, who tune on validation OOD samples). Recorded in ood.json (`fit.primarySelection`).
   * The images must not be the ones a benchmark later reports on. Excludes `primary`.
   */
  selectPrimaryWith?: ImageSet;
  /** Validation OOD images scored for the selection (seeded subset). Default maxHeldout. */
  maxSelect?: number;
  seed?: number;
  onProgress?: (stage: 'train' | 'heldout' | 'select', done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface FitOodResult {
  modelDir: string;
  primary: string;
  thresholds: Record<string, OodScoreThreshold>;
  nTrain: number;
  nHeldout: number;
  shrinkage: { features: number; hidden?: number };
  /** Present when the primary was chosen by `selectPrimaryWith`. */
  primarySelection?: PrimarySelection;
}

/**
 * The score with the highest AUROC of held-out in-distribution scores against validation
 * out-of-distribution scores (ties: the first in `names` order).
 */
export function selectPrimary(
  heldout: Record<string, ArrayLike<number>>,
  validationOut: Record<string, ArrayLike<number>>,
  names: string[],
): { chosen: string; auroc: Record<string, number> } {
  const scores: Record<string, number> = {};
  let chosen = '';
  for (const k of names) {
    if (!heldout[k] || !validationOut[k]) continue;
    scores[k] = auroc(heldout[k], validationOut[k]);
    if (!chosen || scores[k] > scores[chosen]) chosen = k;
  }
  if (!chosen) throw new Error('primary selection: no score to choose from');
  return { chosen, auroc: scores };
}

export async function fitOod(
  modelDir: string,
  trainSet: ImageSet,
  heldoutSet?: ImageSet,
  opts: FitOodOptions = {},
): Promise<FitOodResult> {
  const trainData = toLabeledImages(trainSet);
  const heldoutData = heldoutSet && toLabeledImages(heldoutSet);
  const seed = opts.seed ?? 0;
  const tpr = opts.tpr ?? 0.95;
  const batchSize = opts.batchSize ?? 64;
  const maxHeldout = opts.maxHeldout ?? 1000;
  const loaded = await readModelDir(modelDir);
  const m = loaded.manifest;
  checkShape(trainData, m.input);
  const select = opts.selectPrimaryWith && toLabeledImages(opts.selectPrimaryWith);
  if (select && opts.primary !== undefined)
    throw new Error('give either primary or selectPrimaryWith, not both');
  if (select) checkShape(select, m.input);
  let train = trainData;
  let heldout = heldoutData;
  if (heldout) checkShape(heldout, m.input);
  else {
    const k = Math.min(maxHeldout, Math.max(1, Math.floor(train.n / 10)));
    ({ train, heldout } = splitHeldout(train, k, seed));
  }
  train = subsetImages(train, opts.maxTrain ?? 10000, seed);
  heldout = subsetImages(heldout, maxHeldout, seed + 1);
  const labels = modelLabels(train, m.classes);
  const so = { device: opts.device, threads: opts.threads };

  // 1. Features and hidden activations of the training images.
  const base = new PrgModel(loaded, so, []);
  // A head without a tanh layer (none are built today) just gets no mahalanobis_hidden.
  const hasHidden = loaded.head.nodes.some((n) => n.op === 'Tanh');
  const headHidden = new HeadHidden(loaded.head, so);
  let feats: Float32Array | undefined;
  let hidden: Float32Array | undefined;
  let dimF = 0;
  let dimH = 0;
  try {
    for (const b of imageBatches(train, batchSize)) {
      checkAbort(opts.signal);
      const f = await base.features(b);
      dimF = f.data.length / b.n;
      feats ??= new Float32Array(train.n * dimF);
      feats.set(f.data, b.start * dimF);
      if (hasHidden) {
        const hd = await headHidden.of(f.data, b.n);
        dimH = hd.length / b.n;
        hidden ??= new Float32Array(train.n * dimH);
        hidden.set(hd, b.start * dimH);
      }
      opts.onProgress?.('train', b.start + b.n, train.n);
    }
  } finally {
    await headHidden.release();
    await base.release();
  }
  const K = m.classes.length;
  const gF = await fitTiedGaussian(feats!, labels, dimF, K, {
    shrinkage: opts.shrinkage,
    session: so,
  });
  const gH =
    hidden &&
    (await fitTiedGaussian(hidden, labels, dimH, K, { shrinkage: opts.shrinkage, session: so }));
  // The class-agnostic Gaussians of the relative scores (Ren et al. 2021), on the same rows.
  const bgOpts = { shrinkage: opts.shrinkage, session: so };
  const bF = await fitBackgroundGaussian(feats!, dimF, bgOpts);
  const bH = hidden && (await fitBackgroundGaussian(hidden, dimH, bgOpts));
  const lk = opts.likelihood ?? false;
  const likelihood = lk === false ? null : { ...LIKELIHOOD_DEFAULTS, ...(lk === true ? {} : lk) };
  const stats: OodStatsFile = {
    schema: OOD_SCHEMA,
    mahalanobis: {
      features: tiedGaussianToJson(gF),
      hidden: gH && tiedGaussianToJson(gH),
      background: { features: tiedGaussianToJson(bF), hidden: bH && tiedGaussianToJson(bH) },
    },
    likelihood,
    fit: {
      train: { dataset: trainData.name, n: train.n },
      heldout: { dataset: heldout.name, n: heldout.n },
      tpr,
      fittedAt: new Date().toISOString(),
      command: commandLine(),
    },
  };

  // 2. Held-out scores through the same path inference uses, then thresholds at `tpr`.
  const scorers = scorersFromStats(stats, loaded, so);
  const model = new PrgModel(loaded, so, scorers);
  // Validation out-of-distribution images for choosing the primary (a seeded subset).
  const selectSet = select && subsetImages(select, opts.maxSelect ?? maxHeldout, seed + 2);
  let collected: Record<string, Float32Array>;
  let selectScores: Record<string, Float32Array> | undefined;
  try {
    collected = await scoreSet(
      model,
      heldout,
      batchSize,
      (d, t) => opts.onProgress?.('heldout', d, t),
      opts.signal,
    );
    if (selectSet)
      selectScores = await scoreSet(
        model,
        selectSet,
        batchSize,
        (d, t) => opts.onProgress?.('select', d, t),
        opts.signal,
      );
  } finally {
    await model.release();
  }
  // The ensemble of the scores present, standardised on these held-out images.
  const comps = ENSEMBLE_COMPONENTS.filter((c) => c in collected);
  if (comps.length >= 2) {
    stats.ensemble = fitEnsemble(comps, collected);
    collected.ensemble = ensembleOf(stats.ensemble, collected, heldout.n);
    if (selectSet && selectScores)
      selectScores.ensemble = ensembleOf(stats.ensemble, selectScores, selectSet.n);
  }
  const thresholds: Record<string, OodScoreThreshold> = {};
  for (const [k, v] of Object.entries(collected))
    thresholds[k] = { threshold: thresholdAtTpr(v, tpr), tpr, higherIsInDistribution: true };
  let primarySelection: PrimarySelection | undefined;
  if (selectSet && selectScores) {
    const sel = selectPrimary(collected, selectScores, Object.keys(collected));
    primarySelection = {
      outDataset: selectSet.name,
      nOut: selectSet.n,
      nIn: heldout.n,
      chosen: sel.chosen,
      auroc: sel.auroc,
    };
    stats.fit.primarySelection = primarySelection;
  }
  const primary = primarySelection?.chosen ?? opts.primary ?? 'mahalanobis';
  if (!(primary in thresholds))
    throw new Error(`primary OOD score ${primary} is not one of ${Object.keys(thresholds)}`);

  // 3. Write ood.json and the thresholds into the model directory.
  const manifest = {
    ...m,
    files: { ...m.files, ood: m.files.ood ?? DEFAULT_FILES.ood },
    ood: { primary, scores: thresholds },
  };
  const dir = await writeModelDir(
    loaded.dir,
    { manifest, velocity: loaded.velocity, head: loaded.head, ood: stats },
    { overwrite: true },
  );
  return {
    modelDir: dir,
    primary,
    thresholds,
    nTrain: train.n,
    nHeldout: heldout.n,
    shrinkage: { features: gF.shrinkage, hidden: gH?.shrinkage },
    primarySelection,
  };
}

/**
 * fitOod on dataset specs ('fashion-mnist:train', a folder, 'idx:a,b'), as a fine-tuning job has
 * them: the training set, and the job's evaluation set as held-out data when it has one. Images
 * of another size are converted to the model's input when `allowResize`.
 */
export async function fitOodFromSpecs(
  modelDir: string,
  dataset: string,
  evalDataset?: string,
  opts: Omit<FitOodOptions, 'selectPrimaryWith'> & {
    allowResize?: boolean;
    /** Dataset spec of validation out-of-distribution images (FitOodOptions.selectPrimaryWith). */
    selectPrimaryWith?: string;
  } = {},
): Promise<FitOodResult> {
  const m = await readManifest(modelDir);
  const load = (spec: string) => loadDatasetFor(spec, m, { allowResize: opts.allowResize });
  const train = await load(dataset);
  const held = evalDataset && evalDataset !== dataset ? await load(evalDataset) : undefined;
  const select = opts.selectPrimaryWith ? await load(opts.selectPrimaryWith) : undefined;
  return fitOod(modelDir, train, held, { ...opts, selectPrimaryWith: select });
}
