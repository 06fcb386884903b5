/**
 * What the server (and CLI) need from a loaded PRG model. Implemented in src/prg/inference.ts.
 * Images are NCHW float32 in [-1, 1], already resized to the model's input shape.
 */
import { ModelManifest, SolverName } from './manifest';

export interface ImageBatch {
  data: Float32Array;
  n: number;
}

export interface SolveOptions {
  /** Defaults to the manifest's solver. */
  steps?: number;
  solver?: SolverName;
  /**
   * Class label y fed to a class-conditional velocity net (manifest architecture.velocity.labels)
   * for every image; default its null class (unconditional features). An error on other models.
   */
  classLabel?: number;
}

export interface FeatureOptions extends SolveOptions {
  /** Trajectory time in (0, 1]; defaults to manifest tStar. */
  t?: number;
  /** null: the whole x_t; n: average-pool each channel to n×n. */
  pool?: number | null;
}

export interface ClassifyOptions extends SolveOptions {
  /**
   * OOD scores to compute from the same forward pass (names as in oodScores); the server asks for
   * the model's primary score so that a classify costs one trajectory, not two.
   */
  ood?: string[];
}

export interface ClassifyOutput {
  /** [n, classes] row-major */
  logits: Float32Array;
  probabilities: Float32Array;
  classes: number;
  /** The scores asked for by `ClassifyOptions.ood` that the model has, per image. */
  ood?: Record<string, Float32Array>;
}

export interface FeatureOutput {
  data: Float32Array;
  /** [n, ...] */
  shape: number[];
}

export interface PrgModelApi {
  readonly manifest: ModelManifest;
  /** "name@version" */
  readonly id: string;
  classify(batch: ImageBatch, opts?: ClassifyOptions): Promise<ClassifyOutput>;
  features(batch: ImageBatch, opts?: FeatureOptions): Promise<FeatureOutput>;
  /** Every OOD score per image (issue 4); higher = more in-distribution unless stated. */
  oodScores(batch: ImageBatch, opts?: SolveOptions): Promise<Record<string, Float32Array>>;
  /** Frames x_t along the reverse process for one image, t from 0 to 1: [frames, C, H, W]. */
  trajectory(
    image: Float32Array,
    opts?: SolveOptions & { frames?: number },
  ): Promise<FeatureOutput>;
  release(): Promise<void>;
}
