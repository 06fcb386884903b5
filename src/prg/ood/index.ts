/**
 * Out-of-distribution scoring and likelihood (docs/ood.md). A model loaded with
 * `loadPrgModel(dir, { oodFactories: [oodScorerFactory] })` gets the Mahalanobis and likelihood
 * scorers its ood.json describes.
 */
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
