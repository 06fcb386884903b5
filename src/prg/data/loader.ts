/**
 * Minibatches for training and evaluation: a seeded shuffle per epoch, optional drop_last, uint8
 * pixels normalised to [−1, 1] per batch, and the paper's "simple data augmentation" (§4.1,
 * following DDAE): random crop with zero padding and horizontal flip, both seeded.
 *
 * Every epoch's order and augmentation come from (seed, epoch) alone, so a run resumed at epoch e
 * sees exactly the batches an uninterrupted run would have.
 */
import { Rng, Seed } from '../rng';
import { ImageDataset, imageSize } from './dataset';

export interface AugmentOptions {
  /** Random crop back to H×W after zero-padding each side by this many pixels (0 = off). */
  cropPadding?: number;
  /** Probability of a horizontal flip (0 = off; 0.5 usual). */
  hflip?: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  seed?: Seed;
  augment?: AugmentOptions;
}

export interface Batch {
  /** [n, C, H, W] normalised to [−1, 1]. */
  x: Float32Array;
  labels: Int32Array;
  /** Dataset indices of the rows. */
  indices: Int32Array;
  n: number;
  /** 0-based batch number within the epoch. */
  index: number;
}

/**
 * Normalise one image (CHW uint8) into `out` at `offset`, applying crop/flip. Padding is zero
 * pixels, i.e. −1 after normalisation, as torchvision's RandomCrop(padding) fills with 0.
 */
export function augmentInto(
  src: Uint8Array,
  shape: readonly [number, number, number],
  out: Float32Array,
  offset: number,
  aug: AugmentOptions,
  rng: Rng | null,
): void {
  const [c, h, w] = shape;
  const pad = aug.cropPadding ?? 0;
  // Crop offset into the padded image, in [0, 2·pad]; the source pixel is (y + dy − pad, …).
  const dy = rng && pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
  const dx = rng && pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
  const flip = rng !== null && (aug.hflip ?? 0) > 0 && rng.uniform() < (aug.hflip ?? 0);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < h; y++) {
      const sy = y + dy;
      const row = offset + (ch * h + y) * w;
      for (let x = 0; x < w; x++) {
        const sx = (flip ? w - 1 - x : x) + dx;
        out[row + x] =
          sy < 0 || sy >= h || sx < 0 || sx >= w ? -1 : src[(ch * h + sy) * w + sx] / 127.5 - 1;
      }
    }
}

export class BatchLoader {
  readonly batchSize: number;
  private readonly d: number;

  constructor(
    readonly dataset: ImageDataset,
    readonly opts: BatchOptions,
  ) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
      throw new Error(`batchSize must be an integer >= 1, got ${opts.batchSize}`);
    const pad = opts.augment?.cropPadding ?? 0;
    if (!Number.isInteger(pad) || pad < 0) throw new Error(`cropPadding must be an integer >= 0`);
    const p = opts.augment?.hflip ?? 0;
    if (!(p >= 0 && p <= 1)) throw new Error(`hflip must be a probability, got ${p}`);
    this.batchSize = opts.batchSize;
    this.d = imageSize(dataset.shape);
  }

  get batchesPerEpoch(): number {
    const n = this.dataset.n;
    return this.opts.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The dataset order of epoch `epoch` (a permutation when shuffling). */
  order(epoch: number): Int32Array {
    const n = this.dataset.n;
    if (this.opts.shuffle === false) return Int32Array.from({ length: n }, (_, i) => i);
    return new Rng(`${this.opts.seed ?? 0}:order:${epoch}`).permutation(n);
  }

  /** The batches of one epoch, deterministic in (seed, epoch). */
  *epoch(epoch = 0): Generator<Batch> {
    const order = this.order(epoch);
    const aug = this.opts.augment ?? {};
    const augmenting = (aug.cropPadding ?? 0) > 0 || (aug.hflip ?? 0) > 0;
    const rng = augmenting ? new Rng(`${this.opts.seed ?? 0}:augment:${epoch}`) : null;
    const { images, labels, shape } = this.dataset;
    const d = this.d;
    for (let b = 0; b < this.batchesPerEpoch; b++) {
      const start = b * this.batchSize;
      const idx = order.subarray(start, Math.min(start + this.batchSize, order.length));
      const x = new Float32Array(idx.length * d);
      const lab = new Int32Array(idx.length);
      for (let k = 0; k < idx.length; k++) {
        const i = idx[k];
        augmentInto(images.subarray(i * d, (i + 1) * d), shape, x, k * d, aug, rng);
        lab[k] = labels[i];
      }
      yield { x, labels: lab, indices: Int32Array.from(idx), n: idx.length, index: b };
    }
  }
}
