/**
 * Validation of a parsed `manifest.json` against schema prg.model/v1 (types in
 * src/prg/manifest.ts), field by field, so a bad file fails with an error naming the file and the
 * first bad field.
 */
import {
  MANIFEST_SCHEMA,
  ModelManifest,
  SOLVER_NAMES,
  VELOCITY_KINDS,
  validateImportProvenance,
} from '../manifest';

/** The manifest's file name inside a model directory. */
export const MANIFEST_FILE = 'manifest.json';

type Obj = Record<string, unknown>;

class ManifestError extends Error {}

function fail(where: string, field: string, msg: string): never {
  throw new ManifestError(`${where}: field ${field} ${msg}`);
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown, where: string, field: string): Obj {
  if (!isObj(v)) fail(where, field, `must be an object, got ${JSON.stringify(v)}`);
  return v;
}

function str(v: unknown, where: string, field: string, optional = false): string {
  if (v === undefined && optional) return '';
  if (typeof v !== 'string' || (!optional && v === ''))
    fail(where, field, `must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function int(v: unknown, where: string, field: string, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    fail(where, field, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(
  v: unknown,
  allowed: readonly T[],
  where: string,
  field: string,
): T {
  if (typeof v !== 'string' || !allowed.includes(v as T))
    fail(where, field, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** A file name inside the model directory: no separators, no dot-dot. */
function fileName(v: unknown, where: string, field: string, optional = false): string | undefined {
  if (v === undefined && optional) return undefined;
  const s = str(v, where, field);
  if (s.includes('/') || s.includes('\\') || s === '.' || s === '..')
    fail(where, field, `must be a plain file name inside the model directory, got ${s}`);
  return s;
}

/**
 * Check a parsed manifest.json against schema prg.model/v1. Returns it typed; throws an Error
 * naming the first bad field.
 */
export function validateManifest(raw: unknown, where = MANIFEST_FILE): ModelManifest {
  const m = obj(raw, where, '(root)');
  if (m.schema !== MANIFEST_SCHEMA)
    fail(where, 'schema', `must be "${MANIFEST_SCHEMA}", got ${JSON.stringify(m.schema)}`);
  str(m.name, where, 'name');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(m.name as string))
    fail(where, 'name', `must match [A-Za-z0-9][A-Za-z0-9._-]*, got ${JSON.stringify(m.name)}`);
  str(m.version, where, 'version');
  if (m.description !== undefined) str(m.description, where, 'description');
  str(m.createdAt, where, 'createdAt');
  if (Number.isNaN(Date.parse(m.createdAt as string)))
    fail(where, 'createdAt', `must be an ISO date, got ${JSON.stringify(m.createdAt)}`);

  const arch = obj(m.architecture, where, 'architecture');
  const vel = obj(arch.velocity, where, 'architecture.velocity');
  oneOf(vel.kind, VELOCITY_KINDS, where, 'architecture.velocity.kind');
  if (vel.preset !== undefined) str(vel.preset, where, 'architecture.velocity.preset');
  int(vel.params, where, 'architecture.velocity.params', 0);
  obj(vel.config, where, 'architecture.velocity.config');
  if (vel.labels !== undefined) {
    const lab = obj(vel.labels, where, 'architecture.velocity.labels');
    const classes = int(lab.classes, where, 'architecture.velocity.labels.classes');
    int(lab.nullClass, where, 'architecture.velocity.labels.nullClass', 0);
    if ((lab.nullClass as number) < classes)
      fail(where, 'architecture.velocity.labels.nullClass', `must be >= classes (${classes})`);
    if (
      lab.cfgScale !== undefined &&
      (typeof lab.cfgScale !== 'number' || !Number.isFinite(lab.cfgScale) || lab.cfgScale < 0)
    )
      fail(where, 'architecture.velocity.labels.cfgScale', 'must be a number >= 0');
  }
  if (vel.untrainableOps !== undefined) {
    if (!Array.isArray(vel.untrainableOps) || vel.untrainableOps.length === 0)
      fail(where, 'architecture.velocity.untrainableOps', 'must be a non-empty list of op types');
    vel.untrainableOps.forEach((op, i) =>
      str(op, where, `architecture.velocity.untrainableOps[${i}]`),
    );
  }
  const head = obj(arch.head, where, 'architecture.head');
  oneOf(head.kind, ['mlp', 'pooled'] as const, where, 'architecture.head.kind');
  int(head.hidden, where, 'architecture.head.hidden');
  int(head.params, where, 'architecture.head.params', 0);
  if (head.config !== undefined) obj(head.config, where, 'architecture.head.config');

  oneOf(m.interpolant, ['icfm', 'otcfm', 'gvp'] as const, where, 'interpolant');
  const solver = obj(m.solver, where, 'solver');
  oneOf(solver.name, SOLVER_NAMES, where, 'solver.name');
  int(solver.steps, where, 'solver.steps');
  if (typeof solver.tStar !== 'number' || !(solver.tStar > 0 && solver.tStar <= 1))
    fail(where, 'solver.tStar', `must be a number in (0, 1], got ${JSON.stringify(solver.tStar)}`);

  const input = obj(m.input, where, 'input');
  int(input.channels, where, 'input.channels');
  int(input.height, where, 'input.height');
  int(input.width, where, 'input.width');
  oneOf(input.normalization, ['minus-one-one'] as const, where, 'input.normalization');

  if (m.featurePool !== null) {
    int(m.featurePool, where, 'featurePool');
    const p = m.featurePool as number;
    if (p > (input.height as number) || p > (input.width as number))
      fail(where, 'featurePool', `${p} exceeds the input size ${input.height}×${input.width}`);
  }

  if (!Array.isArray(m.classes) || m.classes.length < 2)
    fail(where, 'classes', `must be an array of at least 2 class names`);
  m.classes.forEach((c, i) => str(c, where, `classes[${i}]`));
  if (new Set(m.classes).size !== m.classes.length) fail(where, 'classes', 'has duplicate names');

  const files = obj(m.files, where, 'files');
  fileName(files.velocity, where, 'files.velocity');
  fileName(files.head, where, 'files.head');
  fileName(files.ood, where, 'files.ood', true);

  const metrics = obj(m.metrics, where, 'metrics');
  for (const [k, v] of Object.entries(metrics)) {
    const r = obj(v, where, `metrics.${k}`);
    if (typeof r.value !== 'number' || !Number.isFinite(r.value))
      fail(where, `metrics.${k}.value`, `must be a finite number, got ${JSON.stringify(r.value)}`);
    str(r.command, where, `metrics.${k}.command`);
    str(r.data, where, `metrics.${k}.data`);
    int(r.n, where, `metrics.${k}.n`, 0);
    str(r.measuredAt, where, `metrics.${k}.measuredAt`);
  }

  if (m.ood !== undefined) {
    const ood = obj(m.ood, where, 'ood');
    str(ood.primary, where, 'ood.primary');
    const scores = obj(ood.scores, where, 'ood.scores');
    for (const [k, v] of Object.entries(scores)) {
      const s = obj(v, where, `ood.scores.${k}`);
      if (typeof s.threshold !== 'number' || !Number.isFinite(s.threshold))
        fail(where, `ood.scores.${k}.threshold`, 'must be a finite number');
      if (typeof s.tpr !== 'number' || !(s.tpr >= 0 && s.tpr <= 1))
        fail(where, `ood.scores.${k}.tpr`, 'must be a number in [0, 1]');
      if (typeof s.higherIsInDistribution !== 'boolean')
        fail(where, `ood.scores.${k}.higherIsInDistribution`, 'must be a boolean');
    }
    if (!((ood.primary as string) in scores))
      fail(
        where,
        'ood.primary',
        `names no entry of ood.scores (${Object.keys(scores).join(', ')})`,
      );
  }

  const prov = obj(m.provenance, where, 'provenance');
  str(prov.dataset, where, 'provenance.dataset');
  str(prov.command, where, 'provenance.command');
  str(prov.gitCommit, where, 'provenance.gitCommit');
  if (prov.parent !== undefined) str(prov.parent, where, 'provenance.parent');
  if (prov.import !== undefined) validateImportProvenance(prov.import, where);
  return m as unknown as ModelManifest;
}
