/**
 * What a served prediction says, computed from a model's outputs and its manifest: the classes
 * ranked by probability, and whether an OOD score is on the out-of-distribution side of its
 * calibrated threshold (manifest.ts OodScoreThreshold; thresholds from src/prg/ood/fit.ts).
 */
import { OodScoreThreshold } from './manifest';

export interface LabelProbability {
  label: string;
  probability: number;
}

export interface Prediction {
  label: string;
  index: number;
  probability: number;
  topK: LabelProbability[];
}

/** The best class and the `k` most probable ones (k capped at the class count). */
export function predict(probabilities: Float32Array, classes: string[], k: number): Prediction {
  const order = Array.from(probabilities.keys()).sort(
    (a, b) => probabilities[b] - probabilities[a],
  );
  const best = order[0];
  return {
    label: classes[best],
    index: best,
    probability: probabilities[best],
    topK: order
      .slice(0, Math.min(k, classes.length))
      .map((i) => ({ label: classes[i], probability: probabilities[i] })),
  };
}

/** True when `score` falls on the out-of-distribution side of the threshold. */
export function isFlagged(score: number, th: OodScoreThreshold): boolean {
  return th.higherIsInDistribution ? score < th.threshold : score > th.threshold;
}
