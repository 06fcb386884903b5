/**
 * Reading and writing model directories: `manifest.json` (schema prg.model/v1,
 * src/prg/manifest.ts), the velocity net ONNX, the head ONNX and optionally `ood.json`. A velocity
 * net larger than `externalDataAbove` bytes (default 1 GiB; protobuf stops at 2 GiB) keeps its
 * weights in ONNX external data beside it, `<velocity>.onnx.data`, named in
 * `manifest.files.velocityData`; graphs are read by path so that file is found.
 *
 * Writing is atomic at the directory level: everything goes into a hidden sibling temp directory
 * (each file fsynced), which is then renamed onto the target; a reader never sees a half-written
 * model. Reading validates the manifest (./manifest-schema.ts) and checks the two graphs against
 * it (./graph-check.ts), so a bad directory fails at load time with an error naming the file and
 * field, not inside ORT on the first request.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readModelFile, writeModelFile } from '../../engine/onnx/model-file';
import { writeFileAtomic } from '../../engine/runtime/checkpoint';
import { Graph, tensorByteLength } from '../../engine/onnx/types';
import { ModelManifest } from '../manifest';
import { checkGraphs, checkStageGraphs } from './graph-check';
import { MANIFEST_FILE, validateManifest } from './manifest-schema';

export const DEFAULT_FILES = {
  velocity: 'velocity.onnx',
  head: 'head.onnx',
  ood: 'ood.json',
  encoder: 'vae-encoder.onnx',
  decoder: 'vae-decoder.onnx',
};

export interface ModelDirContents {
  manifest: ModelManifest;
  velocity: Graph;
  head: Graph;
  /** Free-form OOD statistics (src/prg/ood); written to manifest.files.ood when present. */
  ood?: unknown;
  /** The preprocessing stage's graphs (manifest.preprocess; files.encoder / files.decoder). */
  encoder?: Graph;
  decoder?: Graph;
}

export interface LoadedModelDir extends ModelDirContents {
  dir: string;
}

/**
 * Velocity nets above this many bytes of weights are written with external data. Well below
 * protobuf's 2 GiB so the graph itself and any later growth (an added input) still fit.
 */
export const EXTERNAL_DATA_ABOVE = 2 ** 30;

/** How `readModelDir` loads the velocity net's external weights (see readModelFile). */
export interface ReadModelDirOptions {
  /** `by-reference` keeps external weights on disk (serving); default `copy`. */
  weights?: 'copy' | 'by-reference';
}

/** The external data file name written for a velocity net: ONNX's `<model>.data` convention. */
export function velocityDataFile(velocity: string): string {
  return `${velocity}.data`;
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

/**
 * Load a model directory: manifest, both graphs and ood.json; everything cross-checked. Graphs are
 * read by path, so external data beside them is found; a file named in the manifest that is
 * missing fails naming it.
 */
export async function readModelDir(
  dir: string,
  opts: ReadModelDirOptions = {},
): Promise<LoadedModelDir> {
  const manifest = await readManifest(dir);
  if (manifest.files.velocityData) {
    const p = join(dir, manifest.files.velocityData);
    await fs.access(p).catch((e: Error) => {
      throw new Error(`${p}: cannot read the velocity net's external data (${e.message})`, {
        cause: e,
      });
    });
  }
  const velocity = await readModelFile(join(dir, manifest.files.velocity), {
    weights: opts.weights,
  });
  const head = await readModelFile(join(dir, manifest.files.head));
  checkGraphs(manifest, velocity, head, dir);
  const stage = {
    encoder: manifest.files.encoder
      ? await readModelFile(join(dir, manifest.files.encoder))
      : undefined,
    decoder: manifest.files.decoder
      ? await readModelFile(join(dir, manifest.files.decoder))
      : undefined,
  };
  checkStageGraphs(manifest, stage, dir);
  let ood: unknown;
  if (manifest.files.ood) {
    const p = join(dir, manifest.files.ood);
    try {
      ood = JSON.parse(await fs.readFile(p, 'utf8'));
    } catch (e) {
      throw new Error(`${p}: cannot read as JSON (${(e as Error).message})`, { cause: e });
    }
  }
  return { dir, manifest, velocity, head, ood, ...stage };
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
 * model payload (manifest, a file either manifest names, or external data of a named .onnx) is
 * copied into the new directory. An old model's weights file is never carried into a new model
 * that does not use it.
 */
async function carryOverExtraFiles(from: string, to: string, next: ModelManifest): Promise<void> {
  const payload = new Set<string>([MANIFEST_FILE, ...Object.values(next.files)]);
  const previous = await readManifest(from).catch(() => undefined);
  for (const f of Object.values(previous?.files ?? {})) payload.add(f);
  for (const f of [...payload]) if (f.endsWith('.onnx')) payload.add(velocityDataFile(f));
  for (const e of await fs.readdir(from, { withFileTypes: true }))
    if (e.isFile() && !payload.has(e.name)) await fs.copyFile(join(from, e.name), join(to, e.name));
}

export interface WriteModelDirOptions {
  overwrite?: boolean;
  /** Write the velocity net with external data above this many bytes of weights (1 GiB). */
  externalDataAbove?: number;
}

/**
 * Write a model directory atomically: files go to `.<name>.<random>.tmp` beside `dir`, which is
 * renamed to `dir`. An existing `dir` is only replaced with `overwrite: true` (it is moved aside
 * first and removed after the rename, so `dir` is never missing a file).
 */
export async function writeModelDir(
  dir: string,
  c: ModelDirContents,
  opts: WriteModelDirOptions = {},
): Promise<string> {
  const target = resolve(dir);
  const manifest = validateManifest(
    JSON.parse(JSON.stringify(c.manifest)),
    `manifest for ${target}`,
  );
  let weightBytes = 0;
  for (const t of c.velocity.initializers.values()) weightBytes += tensorByteLength(t);
  const external = weightBytes > (opts.externalDataAbove ?? EXTERNAL_DATA_ABOVE);
  // The manifest names the data file exactly when there is one (a copied manifest may say either).
  if (external) manifest.files.velocityData = velocityDataFile(manifest.files.velocity);
  else delete manifest.files.velocityData;
  validateManifest(manifest, `manifest for ${target}`);
  if (c.ood !== undefined && !manifest.files.ood)
    throw new Error(`model ${target}: ood data given but manifest.files.ood is not set`);
  if (c.ood === undefined && manifest.files.ood)
    throw new Error(`model ${target}: manifest.files.ood is set but no ood data was given`);
  checkGraphs(manifest, c.velocity, c.head, target);
  checkStageGraphs(manifest, c, target);
  if ((c.encoder && !manifest.files.encoder) || (c.decoder && !manifest.files.decoder))
    throw new Error(`model ${target}: stage graphs given but manifest.files does not name them`);
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
    // Data file first, then the .onnx (each temp + fsync + rename, model-file.ts), then the
    // manifest; the whole directory becomes visible only at the rename below.
    await writeModelFile(join(tmp, manifest.files.velocity), c.velocity, {
      externalData: external ? { location: manifest.files.velocityData, threshold: 1024 } : false,
    });
    await writeModelFile(join(tmp, manifest.files.head), c.head);
    if (manifest.files.encoder && c.encoder)
      await writeModelFile(join(tmp, manifest.files.encoder), c.encoder);
    if (manifest.files.decoder && c.decoder)
      await writeModelFile(join(tmp, manifest.files.decoder), c.decoder);
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
