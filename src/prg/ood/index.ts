/**
 * Out-of-distribution scoring and likelihood (docs/ood.md). A model loaded with
 * `loadPrgModel(dir, { oodFactories: [oodScorerFactory] })` gets the Mahalanobis and likelihood
 * scorers its ood.json describes.
 */
export * from './data';
export * from './evaluate';
export * from './fit';
export * from './likelihood';
export * from './mahalanobis';
export * from './metrics';
export * from './scorers';
export * from './stats';
export { pngBitsPerDim } from './complexity';

