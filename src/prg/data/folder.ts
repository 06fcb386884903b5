/**
 * ImageFolder datasets: `root/<class>/<file>.png|jpg|jpeg|webp` (torchvision's layout). Class
 * names are the sub-directory names, sorted; label = index in that order. Images are decoded with
 * sharp and converted to the target shape (channels: grayscale or sRGB, alpha dropped; size: resized
 * when `shape` is given, else every image must match the first).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { ImageDataset, ImageShape, imageSize, validateDataset } from './dataset';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'];

export type OnCorrupt = 'skip' | 'fail';

export interface FolderOptions {
  /** Target [C, H, W], C ∈ {1, 3}. Default: the first image's size, its channels mapped to 1 or 3. */
  shape?: ImageShape;
  /** How `shape`'s size is reached: 'fill' stretches (default), 'cover' crops, 'contain' pads black. */
  fit?: 'fill' | 'cover' | 'contain';
  /** A file sharp cannot decode: skip it (warning lists the paths) or fail the load. Default 'fail'. */
  onCorrupt?: OnCorrupt;
  /** Where skip warnings go (default console.warn). */
  warn?: (message: string) => void;
  /** Parallel decodes (default 4). */
  concurrency?: number;
}

interface Entry {
  file: string;
  label: number;
}

async function listClasses(root: string): Promise<{ classes: string[]; entries: Entry[] }> {
  let dirents;
  try {
    dirents = await fs.readdir(root, { withFileTypes: true });
  } catch (e) {
    throw new Error(`image folder ${root}: ${(e as Error).message}`, { cause: e });
  }
  const classes = dirents
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
  if (!classes.length)
    throw new Error(`image folder ${root}: no class sub-directories (want root/<class>/<image>)`);
  const entries: Entry[] = [];
  for (let label = 0; label < classes.length; label++) {
    const dir = path.join(root, classes[label]);
    const files = (await fs.readdir(dir, { withFileTypes: true }))
      .filter(
        (d) =>
          d.isFile() &&
          !d.name.startsWith('.') &&
          IMAGE_EXTENSIONS.includes(path.extname(d.name).toLowerCase()),
      )
      .map((d) => d.name)
      .sort();
    for (const f of files) entries.push({ file: path.join(dir, f), label });
  }
  if (!entries.length)
    throw new Error(
      `image folder ${root}: no ${IMAGE_EXTENSIONS.join('/')} files in ${classes.length} class folders`,
    );
  return { classes, entries };
}

/** Decode one file to CHW uint8 of `shape`; resizes only when `resize` is set. */
async function decode(
  file: string,
  shape: ImageShape,
  resize: boolean,
  fit: FolderOptions['fit'],
): Promise<Uint8Array> {
  const [c, h, w] = shape;
  let img = sharp(file, { failOn: 'error' }).removeAlpha();
  img = c === 1 ? img.grayscale() : img.toColourspace('srgb');
  if (resize) img = img.resize(w, h, { fit: fit ?? 'fill', background: { r: 0, g: 0, b: 0 } });
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  if (info.width !== w || info.height !== h)
    throw new SizeMismatch(
      `${file} is ${info.width}×${info.height}, the dataset is ${w}×${h}: pass a target shape to resize`,
    );
  // grayscale() may still report 3 channels for some inputs; take the first (all equal).
  const out = new Uint8Array(c * h * w);
  const plane = h * w;
  const ic = info.channels;
  for (let p = 0; p < plane; p++)
    for (let ch = 0; ch < c; ch++) out[ch * plane + p] = data[p * ic + Math.min(ch, ic - 1)];
  return out;
}

/** Not a corrupt file: a valid image of the wrong size. Always fails the load. */
class SizeMismatch extends Error {}

async function firstShape(entries: Entry[], onCorrupt: OnCorrupt): Promise<ImageShape> {
  for (const e of entries) {
    try {
      const m = await sharp(e.file, { failOn: 'error' }).metadata();
      if (!m.width || !m.height) throw new Error('no size');
      const gray = m.channels === 1 || (m.channels === 2 && m.hasAlpha);
      return [gray ? 1 : 3, m.height, m.width];
    } catch (err) {
      if (onCorrupt === 'fail')
        throw new Error(`image ${e.file} cannot be decoded: ${(err as Error).message}`, {
          cause: err,
        });
    }
  }
  throw new Error('no decodable image to take the shape from');
}

export async function loadImageFolder(
  root: string,
  opts: FolderOptions = {},
): Promise<ImageDataset> {
  const onCorrupt = opts.onCorrupt ?? 'fail';
  if (opts.shape) {
    const [c, h, w] = opts.shape;
    if (!(c === 1 || c === 3) || !(h >= 1) || !(w >= 1) || ![h, w].every(Number.isInteger))
      throw new Error(`image folder ${root}: bad target shape [${opts.shape.join(', ')}]`);
  }
  const { classes, entries } = await listClasses(root);
  const shape = opts.shape ?? (await firstShape(entries, onCorrupt));
  const d = imageSize(shape);
  const decoded: (Uint8Array | null)[] = new Array(entries.length).fill(null);
  const skipped: { path: string; reason: string }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < entries.length) {
      const i = next++;
      try {
        decoded[i] = await decode(entries[i].file, shape, !!opts.shape, opts.fit);
      } catch (err) {
        if (err instanceof SizeMismatch)
          throw new Error(`image folder ${root}: ${err.message}`, { cause: err });
        const reason = (err as Error).message;
        if (onCorrupt === 'fail')
          throw new Error(`image ${entries[i].file} cannot be decoded: ${reason}`, { cause: err });
        skipped.push({ path: entries[i].file, reason });
      }
    }
  };
  const workers = Math.max(1, Math.min(opts.concurrency ?? 4, entries.length));
  await Promise.all(Array.from({ length: workers }, worker));

  const kept = entries.map((_, i) => i).filter((i) => decoded[i] !== null);
  if (!kept.length) throw new Error(`image folder ${root}: no image could be decoded`);
  const images = new Uint8Array(kept.length * d);
  const labels = new Int32Array(kept.length);
  kept.forEach((i, k) => {
    images.set(decoded[i]!, k * d);
    labels[k] = entries[i].label;
  });
  if (skipped.length) {
    skipped.sort((a, b) => (a.path < b.path ? -1 : 1));
    (opts.warn ?? console.warn)(
      `image folder ${root}: skipped ${skipped.length} undecodable file(s):\n` +
        skipped.map((s) => `  ${s.path}: ${s.reason}`).join('\n'),
    );
  }
  return validateDataset({
    images,
    labels,
    classes,
    shape,
    n: kept.length,
    source: root,
    ...(skipped.length ? { skipped } : {}),
  });
}

/**
 * Convert in-memory images to another [C, H, W] with sharp (e.g. MNIST 1×28×28 → 3×32×32):
 * 1 → 3 channels replicates gray, 3 → 1 takes sharp's luminance.
 */
export async function convertDataset(
  ds: ImageDataset,
  shape: ImageShape,
  fit: FolderOptions['fit'] = 'fill',
): Promise<ImageDataset> {
  const [c0, h0, w0] = ds.shape;
  const [c, h, w] = shape;
  if (c0 === c && h0 === h && w0 === w) return ds;
  if (!(c === 1 || c === 3)) throw new Error(`convertDataset: channels must be 1 or 3, got ${c}`);
  const d0 = imageSize(ds.shape);
  const d = imageSize(shape);
  const out = new Uint8Array(ds.n * d);
  const hwc = new Uint8Array(d0);
  const plane0 = h0 * w0;
  const plane = h * w;
  for (let i = 0; i < ds.n; i++) {
    const src = ds.images.subarray(i * d0, (i + 1) * d0);
    for (let p = 0; p < plane0; p++)
      for (let ch = 0; ch < c0; ch++) hwc[p * c0 + ch] = src[ch * plane0 + p];
    let img = sharp(hwc, { raw: { width: w0, height: h0, channels: c0 as 1 | 3 } });
    img = c === 1 ? img.grayscale() : img.toColourspace('srgb');
    const { data, info } = await img
      .resize(w, h, { fit, background: { r: 0, g: 0, b: 0 } })
      .raw()
      .toBuffer({ resolveWithObject: true });
    const ic = info.channels;
    for (let p = 0; p < plane; p++)
      for (let ch = 0; ch < c; ch++)
        out[i * d + ch * plane + p] = data[p * ic + Math.min(ch, ic - 1)];
  }
  return { ...ds, images: out, shape: [c, h, w] };
}
