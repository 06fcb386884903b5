/**
 * Out-of-distribution scoring and likelihood (issue 4, docs/ood.md). Importing this module does
 * not register anything; call `registerOod()` once before loading models (server, CLI) so every
 * model with an ood.json gets its Mahalanobis and likelihood scorers.
 */
import { registerOodScorerFactory } from '../inference';
import { oodScorerFactory } from './scorers';

export * from './data';
export * from './deep';
export * from './evaluate';
export * from './fit';
export * from './likelihood';
export * from './mahalanobis';
export * from './metrics';
export * from './outliers';
export * from './scorers';
export * from './selection';
export * from './stats';
export { pngBitsPerDim } from './complexity';

/** Register the OOD scorer factory with inference (idempotent). */
export function registerOod(): void {
  registerOodScorerFactory(oodScorerFactory);
}
