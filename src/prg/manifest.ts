/**
 * The model directory's manifest (`models/<name>/manifest.json`), schema `prg.model/v1`.
 * A directory holds this file, the velocity net ONNX and the head ONNX (docs/engineering.md).
 */

export const MANIFEST_SCHEMA = 'prg.model/v1';

export type InterpolantName = 'icfm' | 'otcfm' | 'gvp';
/**
 * Every ODE solver a model can be served with (paper §3.1, App. C.2), named once here: the
 * manifest schema, the API schemas and the CLI derive their lists from these.
 */
export const SOLVER_NAMES = ['euler', 'midpoint', 'rk4', 'dopri5'] as const;
export type SolverName = (typeof SOLVER_NAMES)[number];

/** Fixed-step solvers: unrolled into one graph, so fine-tuning can differentiate through them. */
export const FIXED_SOLVER_NAMES = ['euler', 'midpoint', 'rk4'] as const;
export type FixedSolverName = (typeof FIXED_SOLVER_NAMES)[number];

export interface MetricRecord {
  value: number;
  /** The command that measured it, rerunnable from the repo root. */
  command: string;
  /** Dataset and split, e.g. "mnist:test". */
  data: string;
  n: number;
  measuredAt: string;
  machine?: string;
}

export interface OodScoreThreshold {
  /** Higher score = more in-distribution, by convention; flagged when score < threshold. */
  threshold: number;
  /** True-positive rate on held-out in-distribution data at which it was calibrated. */
  tpr: number;
  higherIsInDistribution: boolean;
}

export interface ModelManifest {
  schema: typeof MANIFEST_SCHEMA;
  name: string;
  version: string;
  description?: string;
  createdAt: string;
  architecture: {
    velocity: {
      kind: 'unet' | 'dit';
      preset?: string;
      params: number;
      config: Record<string, unknown>;
    };
    head: {
      kind: 'mlp' | 'pooled';
      hidden: number;
      params: number;
      config?: Record<string, unknown>;
    };
  };
  interpolant: InterpolantName;
  /** Reverse process used for features: integrate from t = 0 (image) to tStar in `steps` steps. */
  solver: { name: SolverName; steps: number; tStar: number };
  input: {
    channels: number;
    height: number;
    width: number;
    /** x = pixel / 127.5 - 1 */
    normalization: 'minus-one-one';
  };
  /** How x_t is turned into the head's input. null = flatten. */
  featurePool: number | null;
  classes: string[];
  files: { velocity: string; head: string; ood?: string };
  metrics: Record<string, MetricRecord>;
  ood?: { primary: string; scores: Record<string, OodScoreThreshold> };
  provenance: {
    dataset: string;
    command: string;
    gitCommit: string;
    parent?: string;
    [k: string]: unknown;
  };
}
