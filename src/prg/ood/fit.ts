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
import { SessionOptions } from '../../engine/runtime/session';
import { OodScoreThreshold } from '../manifest';
import { PrgModel } from '../inference';
import {
  LoadedModelDir,
  readManifest,
  readModelDir,
  writeModelDir,
  DEFAULT_FILES,
} from '../model-dir/io';
import { commandLine } from '../model-dir/provenance';
import { loadDatasetFor } from '../training/evaluate';
import {
  ImageSet,
  LabeledImages,
  imageBatches,
  checkShape,
  modelLabels,
  splitHeldout,
  subsetImages,
  toLabeledImages,
} from './data';
import { checkAbort, scoreSet } from './evaluate';
import { LIKELIHOOD_DEFAULTS, LikelihoodOptions } from './likelihood';
import {
  DeepFeatureSpec,
  columnStats,
  deepFeatureDim,
  deepFeatureGraph,
  deepFeatureSpec,
  residualBlockOutputs,
  standardise,
  unstandardiseGaussian,
} from './deep';
import { fitBackgroundGaussian, fitTiedGaussian, tiedGaussianToJson } from './mahalanobis';
import { thresholdAtTpr } from './metrics';
import { GUARD_SETS, outlierSets } from './outliers';
import {
  GuardRecord,
  SELECTION_CRITERION,
  ValidationSetScores,
  aurocTable,
  guardCheck,
  guardMessage,
  selectRobust,
} from './selection';
import {
  ENSEMBLE_COMPONENTS,
  HeadHidden,
  LazySession,
  ScorerOptions,
  deepFeeds,
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
  /**
   * Fit `mahalanobis_deep` (deep.ts) when the velocity net has residual blocks. Default true; it
   * costs two more velocity-net evaluations per scored image.
   */
  deep?: boolean;
  /** Fixed shrinkage α; default Ledoit–Wolf. */
  shrinkage?: number;
  /**
   * The score clients see first (manifest.ood.primary). Default: chosen on the validation outlier
   * sets (selection.ts: best worst-case AUROC among the scores that pass the guard).
   */
  primary?: string;
  /**
   * More validation out-of-distribution images (e.g. a dataset the model should flag), added to
   * the synthetic validation sets the primary is chosen on (the recipe of Lee et al. 2018, who
   * tune on validation OOD samples). Recorded in ood.json (`fit.primarySelection`). The images
   * must not be the ones a benchmark later reports on. Excludes `primary`.
   */
  selectPrimaryWith?: ImageSet;
  /** Images of `selectPrimaryWith` scored (seeded subset). Default maxHeldout. */
  maxSelect?: number;
  /** Images per synthetic validation set (outliers.ts). Default 500. */
  syntheticPerSet?: number;
  /**
   * The guard (selection.ts): the primary must flag ≥ guardMinFlagged of the noise and constant
   * validation sets at its own threshold. 'fallback' (default): else the best score that does,
   * with a warning; 'refuse': else throw; 'off': no check. Recorded in ood.json (`fit.guard`).
   */
  guard?: 'fallback' | 'refuse' | 'off';
  /** Default 0.99. */
  guardMinFlagged?: number;
  /**
   * Called with a readable message when the guard replaces or cannot replace the primary.
   * Default: console.warn.
   */
  onWarning?: (message: string) => void;
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
  /** Present when the primary was chosen on validation outliers (no `primary` given). */
  primarySelection?: PrimarySelection;
  /** What the guard checked and did (absent with guard 'off'). */
  guard?: GuardRecord;
}

/** The training images' rows that the Gaussians of ood.json are fitted on (step 1). */
interface TrainRows {
  /** The head's input x_{t*}, [n, dimF]. */
  features: Float32Array;
  dimF: number;
  /** The head's tanh layer, [n, dimH]; absent for a head without one (none are built today). */
  hidden?: Float32Array;
  dimH: number;
  /** mahalanobis_deep's features (deep.ts), [n, spec dim]: U-Net nets only, when not turned off. */
  deep?: { spec: DeepFeatureSpec; rows: Float32Array; dim: number };
}

async function trainRows(
  loaded: LoadedModelDir,
  train: LabeledImages,
  opts: FitOodOptions,
  so: SessionOptions,
): Promise<TrainRows> {
  const m = loaded.manifest;
  const base = new PrgModel(loaded, so, []);
  const hasHidden = loaded.head.nodes.some((n) => n.op === 'Tanh');
  const headHidden = new HeadHidden(loaded.head, so);
  const deepSpec =
    opts.deep !== false && residualBlockOutputs(loaded.velocity).length > 0
      ? deepFeatureSpec(loaded.velocity, loaded.head, m.solver.tStar)
      : undefined;
  const shape: [number, number, number] = [m.input.channels, m.input.height, m.input.width];
  const deepSession =
    deepSpec &&
    new LazySession(() => deepFeatureGraph(loaded.velocity, loaded.head, deepSpec, shape), so);
  const dimDeep = deepSpec ? deepFeatureDim(deepSpec) : 0;
  const deepRows = deepSpec && new Float32Array(train.n * dimDeep);
  let features: Float32Array | undefined;
  let hidden: Float32Array | undefined;
  let dimF = 0;
  let dimH = 0;
  try {
    for (const b of imageBatches(train, opts.batchSize ?? 64)) {
      checkAbort(opts.signal);
      const f = await base.features(b);
      dimF = f.data.length / b.n;
      features ??= new Float32Array(train.n * dimF);
      features.set(f.data, b.start * dimF);
      if (hasHidden) {
        const hd = await headHidden.of(f.data, b.n);
        dimH = hd.length / b.n;
        hidden ??= new Float32Array(train.n * dimH);
        hidden.set(hd, b.start * dimH);
      }
      if (deepSession && deepRows) {
        const feeds = await deepFeeds({ features: f.data, batch: b, model: base }, shape);
        if (!deepSpec.hidden) delete feeds.features;
        deepRows.set((await deepSession.run(feeds)).deep.data as Float32Array, b.start * dimDeep);
      }
      opts.onProgress?.('train', b.start + b.n, train.n);
    }
  } finally {
    await deepSession?.release();
    await headHidden.release();
    await base.release();
  }
  return {
    features: features!,
    dimF,
    hidden,
    dimH,
    deep: deepSpec && deepRows ? { spec: deepSpec, rows: deepRows, dim: dimDeep } : undefined,
  };
}

/** Step 1's Gaussians: class-conditional, tied and shrunk, per layer, and class-agnostic ones. */
async function fitGaussians(
  rows: TrainRows,
  labels: Int32Array,
  K: number,
  opts: FitOodOptions,
  so: SessionOptions,
): Promise<{ mahalanobis: OodStatsFile['mahalanobis']; shrinkage: FitOodResult['shrinkage'] }> {
  const go = { shrinkage: opts.shrinkage, session: so };
  const gF = await fitTiedGaussian(rows.features, labels, rows.dimF, K, go);
  const gH = rows.hidden && (await fitTiedGaussian(rows.hidden, labels, rows.dimH, K, go));
  // The class-agnostic Gaussians of the relative scores (Ren et al. 2021), on the same rows.
  const bF = await fitBackgroundGaussian(rows.features, rows.dimF, go);
  const bH = rows.hidden && (await fitBackgroundGaussian(rows.hidden, rows.dimH, go));
  // The deep Gaussian is fitted on standardised features and stored on raw ones (deep.ts).
  let deep: OodStatsFile['mahalanobis']['deep'];
  if (rows.deep) {
    const { spec, rows: d, dim } = rows.deep;
    const n = labels.length;
    const { mean, sd } = columnStats(d, n, dim);
    const gz = await fitTiedGaussian(standardise(d, n, dim, mean, sd), labels, dim, K, go);
    deep = { features: spec, gaussian: tiedGaussianToJson(unstandardiseGaussian(gz, mean, sd)) };
  }
  return {
    mahalanobis: {
      features: tiedGaussianToJson(gF),
      hidden: gH && tiedGaussianToJson(gH),
      background: { features: tiedGaussianToJson(bF), hidden: bH && tiedGaussianToJson(bH) },
      ...(deep ? { deep } : {}),
    },
    shrinkage: { features: gF.shrinkage, hidden: gH?.shrinkage },
  };
}

/**
 * Step 2: every score of the held-out images and of each validation outlier set, through the same
 * path inference uses (PrgModel.oodScores with the fitted scorers).
 */
async function scoreHeldoutAndValidation(
  model: PrgModel,
  heldout: LabeledImages,
  validation: { set: LabeledImages; kind: string }[],
  opts: FitOodOptions,
): Promise<{ collected: Record<string, Float32Array>; valScores: ValidationSetScores[] }> {
  const batchSize = opts.batchSize ?? 64;
  try {
    const collected = await scoreSet(
      model,
      heldout,
      batchSize,
      (d, t) => opts.onProgress?.('heldout', d, t),
      opts.signal,
    );
    const valScores: ValidationSetScores[] = [];
    let done = 0;
    const total = validation.reduce((a, v) => a + v.set.n, 0);
    for (const v of validation) {
      const scores = await scoreSet(
        model,
        v.set,
        batchSize,
        (d) => opts.onProgress?.('select', done + d, total),
        opts.signal,
      );
      done += v.set.n;
      valScores.push({ name: v.set.name, kind: v.kind, n: v.set.n, scores });
    }
    return { collected, valScores };
  } finally {
    await model.release();
  }
}

/**
 * The primary score: the one given, or the one chosen on the validation kinds among the scores
 * that pass the guard (all, when none do or the guard is off); then the guard's verdict on it —
 * kept, replaced by the chosen one ('fallback'), refused (throws) or failed (kept, with a warning).
 */
function choosePrimary(
  collected: Record<string, Float32Array>,
  valScores: ValidationSetScores[],
  thresholds: Record<string, OodScoreThreshold>,
  nIn: number,
  userSet: ValidationSetScores | undefined,
  opts: FitOodOptions,
): { primary: string; primarySelection?: PrimarySelection; guard?: GuardRecord } {
  const guardMode = opts.guard ?? 'fallback';
  // The guard: which scores flag noise and constant images at their own thresholds.
  const check = guardCheck(
    thresholds,
    valScores.filter((v) => GUARD_SETS.includes(v.name)),
    opts.guardMinFlagged ?? 0.99,
  );
  const names = Object.keys(collected);
  const eligible =
    guardMode !== 'off' && check.passing.length
      ? names.filter((k) => check.passing.includes(k))
      : names;
  const sel = selectRobust(collected, valScores, eligible);
  const primarySelection: PrimarySelection | undefined =
    opts.primary === undefined
      ? {
          criterion: SELECTION_CRITERION,
          sets: valScores.map((v) => ({ name: v.name, kind: v.kind, n: v.n })),
          ...(userSet ? { outDataset: userSet.name, nOut: userSet.n } : {}),
          nIn,
          chosen: sel.chosen,
          auroc: sel.auroc,
          meanAuroc: sel.meanAuroc,
          aurocBySet: aurocTable(collected, valScores, names),
        }
      : undefined;
  const requested = opts.primary ?? sel.chosen;
  if (guardMode === 'off') return { primary: requested, primarySelection };
  let primary = requested;
  let action: GuardRecord['action'] = 'kept';
  if (!check.passing.includes(requested)) {
    if (guardMode === 'refuse') action = 'refused';
    else if (!check.passing.length) action = 'failed';
    else {
      action = 'fallback';
      primary = sel.chosen;
    }
  }
  const guard: GuardRecord = { ...check, requested, action, primary };
  if (action !== 'kept') {
    const msg = guardMessage(guard);
    if (action === 'refused') throw new Error(msg);
    // Loud by default: a fine-tune job passes no callback, and its log must still show it.
    if (opts.onWarning) opts.onWarning(msg);
    else console.warn(msg);
  }
  return { primary, primarySelection, guard };
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

  // 1. Features and hidden activations of the training images, and the Gaussians on them.
  const rows = await trainRows(loaded, train, opts, so);
  const { mahalanobis, shrinkage } = await fitGaussians(rows, labels, m.classes.length, opts, so);
  const lk = opts.likelihood ?? false;
  const likelihood = lk === false ? null : { ...LIKELIHOOD_DEFAULTS, ...(lk === true ? {} : lk) };
  const stats: OodStatsFile = {
    schema: OOD_SCHEMA,
    mahalanobis,
    likelihood,
    fit: {
      train: { dataset: trainData.name, n: train.n },
      heldout: { dataset: heldout.name, n: heldout.n },
      tpr,
      fittedAt: new Date().toISOString(),
      command: commandLine(),
    },
  };

  // 2. Held-out scores, then thresholds at `tpr`. Validation outlier sets (outliers.ts, role
  // 'validation'; built from the held-out images) and the user's set, for choosing the primary
  // and for the guard.
  const perSet = opts.syntheticPerSet ?? 500;
  const validation = outlierSets('validation').map((d) => ({
    set: d.make(heldout, perSet, seed + 3),
    kind: d.kind,
  }));
  if (select)
    validation.push({
      set: subsetImages(select, opts.maxSelect ?? maxHeldout, seed + 2),
      kind: 'user',
    });
  const model = new PrgModel(loaded, so, scorersFromStats(stats, loaded, so));
  const { collected, valScores } = await scoreHeldoutAndValidation(
    model,
    heldout,
    validation,
    opts,
  );
  // The ensemble of the scores present, standardised on these held-out images.
  const comps = ENSEMBLE_COMPONENTS.filter((c) => c in collected);
  if (comps.length >= 2) {
    stats.ensemble = fitEnsemble(comps, collected);
    collected.ensemble = ensembleOf(stats.ensemble, collected, heldout.n);
    for (const v of valScores) v.scores.ensemble = ensembleOf(stats.ensemble, v.scores, v.n);
  }
  const thresholds: Record<string, OodScoreThreshold> = {};
  for (const [k, v] of Object.entries(collected))
    thresholds[k] = { threshold: thresholdAtTpr(v, tpr), tpr, higherIsInDistribution: true };
  if (opts.primary !== undefined && !(opts.primary in thresholds))
    throw new Error(`primary OOD score ${opts.primary} is not one of ${Object.keys(thresholds)}`);
  const userSet = select ? valScores[valScores.length - 1] : undefined;
  const { primary, primarySelection, guard } = choosePrimary(
    collected,
    valScores,
    thresholds,
    heldout.n,
    userSet,
    opts,
  );
  if (primarySelection) stats.fit.primarySelection = primarySelection;
  if (guard) stats.fit.guard = guard;

  // 3. Write ood.json and the thresholds into the model directory.
  const manifest = {
    ...m,
    files: { ...m.files, ood: m.files.ood ?? DEFAULT_FILES.ood },
    ood: { primary, scores: thresholds },
  };
  const dir = await writeModelDir(
    loaded.dir,
    {
      manifest,
      velocity: loaded.velocity,
      head: loaded.head,
      ood: stats,
      encoder: loaded.encoder,
      decoder: loaded.decoder,
    },
    { overwrite: true },
  );
  return {
    modelDir: dir,
    primary,
    thresholds,
    nTrain: train.n,
    nHeldout: heldout.n,
    shrinkage,
    primarySelection,
    guard,
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
