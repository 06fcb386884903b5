/**
 * How a model directory becomes a PrgModelApi. The ML boundary depends on this token only, so
 * tests and tools can substitute a loader; the default is loadPrgModel (src/prg/inference.ts) with
 * the OOD scorers of src/prg/ood (a model with an ood.json gets Mahalanobis, likelihood, …).
 */
import { loadPrgModel } from '../../prg/inference';
import { PrgModelApi } from '../../prg/inference-api';
import { oodScorerFactory } from '../../prg/ood/scorers';
import { Device } from '../config/config';

export interface LoadOptions {
  device: Device;
  threads: number;
  /** Sessions cached per model (MAX_GRAPHS). */
  maxGraphs?: number;
  /** Bytes of velocity weights above which solvers run stepwise (STEPWISE_ABOVE_MB). */
  stepwiseAbove?: number;
}

export type ModelLoader = (dir: string, opts: LoadOptions) => Promise<PrgModelApi>;

export const MODEL_LOADER = Symbol('MODEL_LOADER');

export const defaultModelLoader: ModelLoader = (dir, opts) =>
  loadPrgModel(dir, { ...opts, oodFactories: [oodScorerFactory] });
