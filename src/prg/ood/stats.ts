/**
 * The model directory's OOD statistics file (manifest.files.ood, normally ood.json), schema
 * `prg.ood/v1`. Written by fitOod (fit.ts); thresholds live in manifest.ood, not here.
 */
import type { DeepFeatureSpec } from './deep';
import { LikelihoodOptions } from './likelihood';
import type { GuardRecord } from './selection';
import { TiedGaussianJson } from './mahalanobis';

export const OOD_SCHEMA = 'prg.ood/v1';

/** Settings of the `ensemble` score (scorers.ts), stored in ood.json. */
export interface EnsembleStats {
  components: string[];
  /** Mean and standard deviation of each component on the held-out in-distribution images. */
  mean: number[];
  std: number[];
}

export interface OodStatsFile {
  schema: typeof OOD_SCHEMA;
  /**
   * Tied-covariance Gaussians per layer: the head's input and its hidden layer; `background`
   * holds each layer's class-agnostic Gaussian for the relative scores (absent in files written
   * before they existed: those models just lack the relative_* scores).
   */
  mahalanobis: {
    features?: TiedGaussianJson;
    hidden?: TiedGaussianJson;
    background?: { features?: TiedGaussianJson; hidden?: TiedGaussianJson };
    /** `mahalanobis_deep` (deep.ts): the feature layout and the Gaussian on it; absent in older files. */
    deep?: { features: DeepFeatureSpec; gaussian: TiedGaussianJson };
  };
  /** Settings of the bits/dim estimate the thresholds were calibrated with; null = not used. */
  likelihood: Omit<LikelihoodOptions, 'session'> | null;
  /** The standardised average of several scores (scorers.ts); absent = no ensemble score. */
  ensemble?: EnsembleStats;
  fit: {
    train: { dataset: string; n: number };
    heldout: { dataset: string; n: number };
    tpr: number;
    /** How the primary score was chosen, when it was chosen on validation OOD data. */
    primarySelection?: PrimarySelection;
    /** The fit-time guard's check of the primary on noise and constant images (selection.ts). */
    guard?: GuardRecord;
    fittedAt: string;
    command: string;
  };
}

/**
 * How the primary was chosen (fitOod, selection.ts): the score with the best worst-case AUROC of
 * `nIn` held-out in-distribution images against each validation outlier set — the synthetic
 * validation kinds of outliers.ts, plus `outDataset` (`nOut` images) when the user gave one.
 */
export interface PrimarySelection {
  criterion: string;
  sets: { name: string; kind: string; n: number }[];
  /** The user-supplied validation set (fitOod's selectPrimaryWith), when there was one. */
  outDataset?: string;
  nOut?: number;
  nIn: number;
  chosen: string;
  /** The criterion (worst-case AUROC) of each candidate that passed the guard. */
  auroc: Record<string, number>;
  meanAuroc: Record<string, number>;
  /** AUROC of every score on every validation set: [score][set]. */
  aurocBySet: Record<string, Record<string, number>>;
}

export function parseOodStats(raw: unknown, where: string): OodStatsFile {
  const o = raw as Partial<OodStatsFile> | null;
  if (!o || typeof o !== 'object' || o.schema !== OOD_SCHEMA)
    throw new Error(`${where}: not an OOD stats file (want schema "${OOD_SCHEMA}")`);
  if (!o.mahalanobis || typeof o.mahalanobis !== 'object')
    throw new Error(`${where}: field mahalanobis must be an object`);
  if (o.likelihood !== null && typeof o.likelihood !== 'object')
    throw new Error(`${where}: field likelihood must be an object or null`);
  return o as OodStatsFile;
}
