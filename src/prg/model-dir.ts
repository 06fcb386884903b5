/**
 * Model directories: `manifest.json` (schema prg.model/v1, src/prg/manifest.ts), the velocity net
 * ONNX, the head ONNX and optionally `ood.json`.
 *
 * Writing is atomic at the directory level: everything goes into a hidden sibling temp directory
 * (each file fsynced), which is then renamed onto the target; a reader never sees a half-written
 * model. Reading validates the manifest field by field and checks the two graphs against it
 * (input/output names, image shape, feature width, class count), so a bad directory fails at
 * load time with an error naming the file and field, not inside ORT on the first request.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { decodeModel, encodeModel } from '../engine/onnx/proto';
import { writeFileAtomic } from '../engine/runtime/checkpoint';
import { Graph, ValueInfo } from '../engine/onnx/types';
import { MANIFEST_SCHEMA, ModelManifest } from './manifest';

export const MANIFEST_FILE = 'manifest.json';
export const DEFAULT_FILES = { velocity: 'velocity.onnx', head: 'head.onnx', ood: 'ood.json' };

export interface ModelDirContents {
  manifest: ModelManifest;
  velocity: Graph;
  head: Graph;
  /** Free-form OOD statistics (src/prg/ood); written to manifest.files.ood when present. */
  ood?: unknown;
}

export interface LoadedModelDir extends ModelDirContents {
  dir: string;
}

// ---- manifest validation --------------------------------------------------------------------

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
  oneOf(vel.kind, ['unet', 'dit'] as const, where, 'architecture.velocity.kind');
  if (vel.preset !== undefined) str(vel.preset, where, 'architecture.velocity.preset');
  int(vel.params, where, 'architecture.velocity.params', 0);
  obj(vel.config, where, 'architecture.velocity.config');
  const head = obj(arch.head, where, 'architecture.head');
  oneOf(head.kind, ['mlp', 'pooled'] as const, where, 'architecture.head.kind');
  int(head.hidden, where, 'architecture.head.hidden');
  int(head.params, where, 'architecture.head.params', 0);
  if (head.config !== undefined) obj(head.config, where, 'architecture.head.config');

  oneOf(m.interpolant, ['icfm', 'otcfm', 'gvp'] as const, where, 'interpolant');
  const solver = obj(m.solver, where, 'solver');
  oneOf(solver.name, ['euler', 'midpoint', 'rk4', 'dopri5'] as const, where, 'solver.name');
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
  return m as unknown as ModelManifest;
}

/** Width of the head's input: the flattened x_t, or C·n·n after pooling to n×n. */
export function featureDim(m: Pick<ModelManifest, 'input' | 'featurePool'>): number {
  const { channels: c, height: h, width: w } = m.input;
  return m.featurePool === null ? c * h * w : c * m.featurePool * m.featurePool;
}

function findIO(list: ValueInfo[], name: string): ValueInfo | undefined {
  return list.find((v) => v.name === name);
}

function dimOk(d: number | string, want: number): boolean {
  return typeof d === 'string' || d === want;
}

/** Check the two graphs against the manifest (names, dtypes, shapes). */
export function checkGraphs(m: ModelManifest, velocity: Graph, head: Graph, where: string): void {
  const { channels: c, height: h, width: w } = m.input;
  const vf = `${where}/${m.files.velocity}`;
  const x = findIO(velocity.inputs, 'x');
  const t = findIO(velocity.inputs, 't');
  const v = findIO(velocity.outputs, 'v');
  if (!x || !t || !v)
    throw new Error(
      `${vf}: the velocity net must have inputs x, t and output v; has inputs ` +
        `${velocity.inputs.map((i) => i.name).join(', ')} and outputs ` +
        `${velocity.outputs.map((o) => o.name).join(', ')}`,
    );
  if (velocity.inputs.length !== 2)
    throw new Error(
      `${vf}: the velocity net must have exactly inputs x and t (parameters as initializers); ` +
        `has ${velocity.inputs.map((i) => i.name).join(', ')}`,
    );
  const img = [c, h, w];
  for (const [info, rank] of [
    [x, 4],
    [v, 4],
    [t, 1],
  ] as const) {
    if (info.dtype !== 'float32' || info.shape.length !== rank)
      throw new Error(
        `${vf}: ${info.name} is ${info.dtype}[${info.shape}], want float32 rank ${rank}`,
      );
    if (rank === 4 && !info.shape.slice(1).every((d, i) => dimOk(d, img[i])))
      throw new Error(
        `${vf}: ${info.name} has shape [${info.shape}], the manifest's input is [N, ${img}]`,
      );
  }
  const hf = `${where}/${m.files.head}`;
  const feat = findIO(head.inputs, 'features');
  const logits = findIO(head.outputs, 'logits');
  if (!feat || !logits || head.inputs.length !== 1)
    throw new Error(
      `${hf}: the head must have one input features and an output logits; has inputs ` +
        `${head.inputs.map((i) => i.name).join(', ')} and outputs ` +
        `${head.outputs.map((o) => o.name).join(', ')}`,
    );
  const D = featureDim(m);
  if (feat.shape.length !== 2 || !dimOk(feat.shape[1], D))
    throw new Error(
      `${hf}: features has shape [${feat.shape}], but the manifest (input ${img.join('×')}, ` +
        `featurePool ${m.featurePool}) gives ${D} features`,
    );
  if (logits.shape.length !== 2 || !dimOk(logits.shape[1], m.classes.length))
    throw new Error(
      `${hf}: logits has shape [${logits.shape}], the manifest lists ${m.classes.length} classes`,
    );
}

// ---- read / write -----------------------------------------------------------------------------

async function readGraph(path: string): Promise<Graph> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  try {
    return decodeModel(bytes);
  } catch (e) {
    throw new Error(`${path}: not a valid ONNX model (${(e as Error).message})`, { cause: e });
  }
}

/** Read and validate only the manifest of a model directory. */
export async function readManifest(dir: string): Promise<ModelManifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  return validateManifest(raw, path);
}

/**
 * Change only the manifest of an existing model directory (e.g. record a measured metric):
 * the new manifest is validated, written beside the old one and renamed over it, so a reader
 * sees either the old or the new file, never half of one.
 */
export async function updateManifest(
  dir: string,
  change: (m: ModelManifest) => ModelManifest,
): Promise<ModelManifest> {
  const next = validateManifest(change(await readManifest(dir)));
  await writeFileAtomic(
    join(dir, MANIFEST_FILE),
    new TextEncoder().encode(JSON.stringify(next, null, 2) + '\n'),
  );
  return next;
}

/** Load a model directory: manifest, both graphs and ood.json; everything cross-checked. */
export async function readModelDir(dir: string): Promise<LoadedModelDir> {
  const manifest = await readManifest(dir);
  const velocity = await readGraph(join(dir, manifest.files.velocity));
  const head = await readGraph(join(dir, manifest.files.head));
  checkGraphs(manifest, velocity, head, dir);
  let ood: unknown;
  if (manifest.files.ood) {
    const p = join(dir, manifest.files.ood);
    try {
      ood = JSON.parse(await fs.readFile(p, 'utf8'));
    } catch (e) {
      throw new Error(`${p}: cannot read as JSON (${(e as Error).message})`, { cause: e });
    }
  }
  return { dir, manifest, velocity, head, ood };
}

async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await fs.open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replacing a model directory (e.g. `prg ood-fit` adding thresholds) must not lose what people
 * keep beside the model — its README, notes — so every regular file that is not part of the
 * model payload (manifest, or a file either manifest names) is copied into the new directory.
 */
async function carryOverExtraFiles(from: string, to: string, next: ModelManifest): Promise<void> {
  const payload = new Set<string>([MANIFEST_FILE, ...Object.values(next.files)]);
  const previous = await readManifest(from).catch(() => undefined);
  for (const f of Object.values(previous?.files ?? {})) payload.add(f);
  for (const e of await fs.readdir(from, { withFileTypes: true }))
    if (e.isFile() && !payload.has(e.name)) await fs.copyFile(join(from, e.name), join(to, e.name));
}

/**
 * Write a model directory atomically: files go to `.<name>.<random>.tmp` beside `dir`, which is
 * renamed to `dir`. An existing `dir` is only replaced with `overwrite: true` (it is moved aside
 * first and removed after the rename, so `dir` is never missing a file).
 */
export async function writeModelDir(
  dir: string,
  c: ModelDirContents,
  opts: { overwrite?: boolean } = {},
): Promise<string> {
  const target = resolve(dir);
  const manifest = validateManifest(
    JSON.parse(JSON.stringify(c.manifest)),
    `manifest for ${target}`,
  );
  if (c.ood !== undefined && !manifest.files.ood)
    throw new Error(`model ${target}: ood data given but manifest.files.ood is not set`);
  if (c.ood === undefined && manifest.files.ood)
    throw new Error(`model ${target}: manifest.files.ood is set but no ood data was given`);
  checkGraphs(manifest, c.velocity, c.head, target);
  await fs.mkdir(dirname(target), { recursive: true });
  const exists = await fs
    .stat(target)
    .then(() => true)
    .catch(() => false);
  if (exists && !opts.overwrite)
    throw new Error(`model directory ${target} already exists (pass overwrite to replace it)`);
  const tag = randomBytes(6).toString('hex');
  const tmp = join(dirname(target), `.${basename(target)}.${tag}.tmp`);
  await fs.mkdir(tmp);
  try {
    await writeSynced(join(tmp, manifest.files.velocity), encodeModel(c.velocity));
    await writeSynced(join(tmp, manifest.files.head), encodeModel(c.head));
    if (manifest.files.ood)
      await writeSynced(join(tmp, manifest.files.ood), JSON.stringify(c.ood, null, 2) + '\n');
    await writeSynced(join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    if (exists) await carryOverExtraFiles(target, tmp, manifest);
    if (exists) {
      const old = join(dirname(target), `.${basename(target)}.${tag}.old`);
      await fs.rename(target, old);
      await fs.rename(tmp, target);
      await fs.rm(old, { recursive: true, force: true });
    } else {
      await fs.rename(tmp, target);
    }
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw new Error(`cannot write model directory ${target}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return target;
}

// ---- provenance -------------------------------------------------------------------------------

let cachedCommit: string | undefined;

/** HEAD of the repository this code runs from ("unknown" outside git), plus "-dirty" if so. */
export function gitCommit(): string {
  if (cachedCommit !== undefined) return cachedCommit;
  const cwd = resolve(__dirname, '..', '..');
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: 'pipe' })
      .toString()
      .trim();
    cachedCommit = head || 'unknown';
  } catch {
    cachedCommit = 'unknown';
  }
  return cachedCommit;
}

/** The command line that produced a model, rerunnable from the repo root. */
export function commandLine(argv: readonly string[] = process.argv): string {
  const args = argv.slice(2).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)));
  const script = argv[1] ?? '';
  const cmd = /(?:^|\/)(?:bin\/prg(?:\.js)?|dist\/src\/cli\/main\.js)$/.test(script)
    ? 'prg'
    : basename(script || 'node');
  return [cmd, ...args].join(' ');
}

export function provenance(
  dataset: string,
  extra: Record<string, unknown> = {},
): ModelManifest['provenance'] {
  return { dataset, command: commandLine(), gitCommit: gitCommit(), ...extra };
}
