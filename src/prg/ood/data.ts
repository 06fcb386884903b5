/**
 * The image sets the OOD pipeline works on: NCHW float32 in [−1, 1] (docs/engineering.md), with
 * labels for the training set (Mahalanobis class means). Dataset specs ('fashion-mnist:test',
 * a folder...) are resolved by the data module; this file only subsets and batches.
 */
import type { ImageBatch } from '../inference-api';
import { Rng } from '../rng';

export interface LabeledImages {
  /** [n, C, H, W] row-major, values in [−1, 1]. */
  data: Float32Array;
  n: number;
  shape: [number, number, number];
  /** Class index per image, when known. */
  labels?: ArrayLike<number>;
  /** Class names the labels index, when known (mapped onto the model's classes by name). */
  classes?: string[];
  /** What it is, for reports: 'fashion-mnist:test'. */
  name: string;
}

/**
 * A labelled uint8 image set (structurally src/prg/data's ImageDataset): N×C×H×W pixels 0..255.
 */
export interface PixelImages {
  images: Uint8Array;
  labels: Int32Array;
  classes: string[];
  shape: [number, number, number];
  n: number;
  source: string;
}

export type ImageSet = LabeledImages | PixelImages;

/** Float images in [−1, 1] (x = pixel / 127.5 − 1); LabeledImages pass through. */
export function toLabeledImages(d: ImageSet): LabeledImages {
  if ('data' in d) return d;
  const data = new Float32Array(d.images.length);
  for (let i = 0; i < data.length; i++) data[i] = d.images[i] / 127.5 - 1;
  return { data, n: d.n, shape: d.shape, labels: d.labels, classes: d.classes, name: d.source };
}

/** A seeded subset of `count` images (all of them, in order, when count ≥ n). */
export function subsetImages(d: LabeledImages, count: number | undefined, seed = 0): LabeledImages {
  if (count === undefined || count >= d.n) return d;
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`subset of ${d.name}: count ${count} must be a positive integer`);
  const idx = Array.from(new Rng(`ood-subset:${seed}`).permutation(d.n).subarray(0, count)).sort(
    (a, b) => a - b,
  );
  return pick(d, idx, `${d.name}[${count} of ${d.n}]`);
}

export function pick(d: LabeledImages, idx: ArrayLike<number>, name: string): LabeledImages {
  const D = d.shape[0] * d.shape[1] * d.shape[2];
  const data = new Float32Array(idx.length * D);
  const labels = d.labels ? new Int32Array(idx.length) : undefined;
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j];
    data.set(d.data.subarray(i * D, (i + 1) * D), j * D);
    if (labels) labels[j] = d.labels![i];
  }
  return { data, n: idx.length, shape: d.shape, labels, classes: d.classes, name };
}

/**
 * Split off a held-out part (seeded, disjoint): `heldout` images for calibration, the rest for
 * fitting.
 */
export function splitHeldout(
  d: LabeledImages,
  heldout: number,
  seed = 0,
): { train: LabeledImages; heldout: LabeledImages } {
  if (heldout < 1 || heldout >= d.n)
    throw new Error(`${d.name}: cannot hold out ${heldout} of ${d.n} images`);
  const perm = new Rng(`ood-split:${seed}`).permutation(d.n);
  const h = Array.from(perm.subarray(0, heldout)).sort((a, b) => a - b);
  const t = Array.from(perm.subarray(heldout)).sort((a, b) => a - b);
  return {
    train: pick(d, t, `${d.name}[train part]`),
    heldout: pick(d, h, `${d.name}[held-out part]`),
  };
}

export function* imageBatches(
  d: LabeledImages,
  size: number,
): Generator<ImageBatch & { start: number }> {
  const D = d.shape[0] * d.shape[1] * d.shape[2];
  for (let s = 0; s < d.n; s += size) {
    const n = Math.min(size, d.n - s);
    yield { data: d.data.subarray(s * D, (s + n) * D), n, start: s };
  }
}

/** Labels as indices into `modelClasses`, mapped by name when the data names its classes. */
export function modelLabels(d: LabeledImages, modelClasses: string[]): Int32Array {
  if (!d.labels) throw new Error(`${d.name}: has no labels (needed to fit class means)`);
  const out = new Int32Array(d.n);
  const byName = d.classes ? d.classes.map((c) => modelClasses.indexOf(c)) : undefined;
  for (let i = 0; i < d.n; i++) {
    const y = d.labels[i];
    const m = byName ? byName[y] : y;
    if (m === undefined || m < 0 || m >= modelClasses.length || !Number.isInteger(m))
      throw new Error(
        `${d.name}: label ${y}${d.classes ? ` (${d.classes[y]})` : ''} of image ${i} is not ` +
          `one of the model's classes (${modelClasses.join(', ')})`,
      );
    out[i] = m;
  }
  return out;
}

export function checkShape(
  d: LabeledImages,
  want: { channels: number; height: number; width: number },
) {
  const [c, h, w] = d.shape;
  if (c !== want.channels || h !== want.height || w !== want.width)
    throw new Error(
      `${d.name}: images are ${c}×${h}×${w}, the model takes ${want.channels}×${want.height}×${want.width}`,
    );
  if (d.data.length !== d.n * c * h * w)
    throw new Error(`${d.name}: ${d.data.length} values for ${d.n} images of ${c}×${h}×${w}`);
}
