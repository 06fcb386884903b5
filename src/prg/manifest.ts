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

export const VELOCITY_KINDS = ['unet', 'dit', 'onnx'] as const;
export type VelocityKind = (typeof VELOCITY_KINDS)[number];

/**
 * A class-conditional velocity net's label input: y ∈ [0, classes) names a class, y = nullClass is
 * the "no class" embedding of classifier-free guidance (SiT: the last row of its label table),
 * which the server feeds unless a request gives `classLabel`.
 */
export interface ClassLabels {
  classes: number;
  nullClass: number;
  /**
   * Guidance scale the upstream model samples with, recorded for sampling only: features and
   * classification integrate one velocity field, so no scale enters them.
   */
  cfgScale?: number;
}

/** The label a request may ask for, or why not (null = valid). */
export function classLabelProblem(labels: ClassLabels | undefined, v: number): string | null {
  if (!labels) return 'the model is unconditional (its velocity net takes no class label)';
  if (!Number.isInteger(v) || v < 0 || (v >= labels.classes && v !== labels.nullClass))
    return (
      `classLabel must be an integer in [0, ${labels.classes - 1}] or ${labels.nullClass} ` +
      `(the null class), got ${v}`
    );
  return null;
}

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
      /** 'onnx': a user's own velocity graph wrapped by `prg import onnx` (no builder here). */
      kind: VelocityKind;
      preset?: string;
      params: number;
      config: Record<string, unknown>;
      /** Present when the net takes an int64 class label `y` [N] (class-conditional imports). */
      labels?: ClassLabels;
      /**
       * Op types of the velocity graph that have no VJP rule (src/engine/autodiff/rules.ts): the
       * flow is inference-only and only its head can be fine-tuned. Absent = trainable.
       */
      untrainableOps?: string[];
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

export const IMPORT_FAMILIES = ['sit', 'torchcfm-unet', 'onnx'] as const;
export type ImportFamily = (typeof IMPORT_FAMILIES)[number];

/**
 * What `prg import` records in `provenance.import` (optional; models trained here have none):
 * the source file, the key mapping, the time convention and the verification, so an imported
 * model can be traced to the exact bytes it came from.
 */
export interface ImportProvenance {
  family: ImportFamily;
  source: {
    file: string;
    sha256: string;
    bytes: number;
    format: 'safetensors' | 'torch-zip' | 'onnx';
    /** Which part of the file held the weights, e.g. "ema", "ema_model (module. stripped)". */
    stateDict: string;
  };
  /** Upstream configuration as declared or detected (e.g. {config: "SiT-XL/2", learnSigma}). */
  upstream: Record<string, unknown>;
  /** This project's parameter name → the checkpoint key it was read from. */
  mapping: Record<string, string>;
  /** Checkpoint keys deliberately not used, with the reason (e.g. learn_sigma rows). */
  ignored?: Record<string, string>;
  convention: { upstream: string; transform: string };
  /** `prg import onnx`: the declared contract of the user's graph (names, time convention, scale). */
  contract?: Record<string, unknown>;
  verify?: { file: string; sha256: string; maxAbsDiff: number; tolerance: number; n: number };
}

/** Check a provenance.import object; throws naming the first bad field. */
export function validateImportProvenance(raw: unknown, where: string): ImportProvenance {
  const bad = (field: string, msg: string): never => {
    throw new Error(`${where}: field provenance.import.${field} ${msg}`);
  };
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(raw)) return bad('(root)', 'must be an object');
  if (!IMPORT_FAMILIES.includes(raw.family as ImportFamily))
    bad(
      'family',
      `must be one of ${IMPORT_FAMILIES.join(', ')}, got ${JSON.stringify(raw.family)}`,
    );
  const src = raw.source;
  if (!isObj(src)) return bad('source', 'must be an object');
  if (typeof src.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(src.sha256))
    bad('source.sha256', 'must be 64 hex digits');
  if (typeof src.file !== 'string' || !src.file) bad('source.file', 'must be a non-empty string');
  if (!Number.isInteger(src.bytes) || (src.bytes as number) < 0)
    bad('source.bytes', 'must be a non-negative integer');
  if (src.format !== 'safetensors' && src.format !== 'torch-zip' && src.format !== 'onnx')
    bad('source.format', 'must be safetensors, torch-zip or onnx');
  if (typeof src.stateDict !== 'string') bad('source.stateDict', 'must be a string');
  if (!isObj(raw.upstream)) bad('upstream', 'must be an object');
  if (!isObj(raw.mapping) || !Object.values(raw.mapping).every((v) => typeof v === 'string'))
    bad('mapping', 'must map parameter names to checkpoint keys');
  if (raw.ignored !== undefined && !isObj(raw.ignored)) bad('ignored', 'must be an object');
  const conv = raw.convention;
  if (!isObj(conv) || typeof conv.upstream !== 'string' || typeof conv.transform !== 'string')
    bad('convention', 'must be {upstream, transform} strings');
  if (raw.verify !== undefined) {
    const v = raw.verify;
    if (!isObj(v)) return bad('verify', 'must be an object');
    for (const k of ['maxAbsDiff', 'tolerance', 'n'] as const)
      if (typeof v[k] !== 'number' || !Number.isFinite(v[k]))
        bad(`verify.${k}`, 'must be a number');
    if (typeof v.file !== 'string' || typeof v.sha256 !== 'string')
      bad('verify', 'must name the file and its sha256');
  }
  return raw as unknown as ImportProvenance;
}
