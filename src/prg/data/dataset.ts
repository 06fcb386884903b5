/**
 * In-memory labelled image datasets. Pixels stay uint8 (N×C×H×W, 1 byte per value: all of MNIST is
 * 47 MB) and are normalised per batch: x = pixel / 127.5 − 1 ∈ [−1, 1] (docs/engineering.md).
 */

export type ImageShape = [channels: number, height: number, width: number];

export interface ImageDataset {
  /** N×C×H×W row-major uint8 pixels. */
  images: Uint8Array;
  /** Class index per image, in [0, classes.length). */
  labels: Int32Array;
  /** Class names; index = label. */
  classes: string[];
  shape: ImageShape;
  n: number;
  /** Where it came from (the --data spec). */
  source: string;
  /** Images left out by `onCorrupt: 'skip'`, with the decoder's reason. */
  skipped?: { path: string; reason: string }[];
}

export function imageSize(shape: ImageShape): number {
  return shape[0] * shape[1] * shape[2];
}

/** Check the invariants every loader promises; throws naming the first violation. */
export function validateDataset(ds: ImageDataset): ImageDataset {
  const [c, h, w] = ds.shape;
  for (const [v, what] of [
    [c, 'channels'],
    [h, 'height'],
    [w, 'width'],
  ] as const)
    if (!Number.isInteger(v) || v < 1) throw new Error(`dataset ${ds.source}: bad ${what} ${v}`);
  if (ds.images.length !== ds.n * c * h * w)
    throw new Error(
      `dataset ${ds.source}: ${ds.images.length} pixels for ${ds.n} images of ${c}×${h}×${w}`,
    );
  if (ds.labels.length !== ds.n)
    throw new Error(`dataset ${ds.source}: ${ds.labels.length} labels for ${ds.n} images`);
  for (let i = 0; i < ds.n; i++)
    if (ds.labels[i] < 0 || ds.labels[i] >= ds.classes.length)
      throw new Error(
        `dataset ${ds.source}: label ${ds.labels[i]} of image ${i} is outside [0, ${ds.classes.length})`,
      );
  return ds;
}

/** The images at `indices`, in that order (a copy). */
export function subset(
  ds: ImageDataset,
  indices: ArrayLike<number>,
  source?: string,
): ImageDataset {
  const d = imageSize(ds.shape);
  const images = new Uint8Array(indices.length * d);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= ds.n)
      throw new Error(`subset: index ${i} outside [0, ${ds.n})`);
    images.set(ds.images.subarray(i * d, (i + 1) * d), k * d);
    labels[k] = ds.labels[i];
  }
  return {
    images,
    labels,
    classes: ds.classes,
    shape: ds.shape,
    n: indices.length,
    source: source ?? ds.source,
  };
}

/** The first `n` images (or all of them). */
export function head(ds: ImageDataset, n: number): ImageDataset {
  if (n >= ds.n) return ds;
  return subset(
    ds,
    Array.from({ length: n }, (_, i) => i),
    ds.source,
  );
}

/** pixel → pixel / 127.5 − 1 for every value; `out` may be reused. */
export function normalizePixels(px: Uint8Array, out = new Float32Array(px.length)): Float32Array {
  for (let i = 0; i < px.length; i++) out[i] = px[i] / 127.5 - 1;
  return out;
}

/** Inverse of the normalisation, rounded and clamped to [0, 255]. */
export function denormalizePixels(
  x: ArrayLike<number>,
  out = new Uint8Array(x.length),
): Uint8Array {
  for (let i = 0; i < x.length; i++)
    out[i] = Math.max(0, Math.min(255, Math.round((x[i] + 1) * 127.5)));
  return out;
}

/** Images per class, for summaries and stratification checks. */
export function classCounts(ds: ImageDataset): number[] {
  const counts = new Array<number>(ds.classes.length).fill(0);
  for (const l of ds.labels) counts[l]++;
  return counts;
}
