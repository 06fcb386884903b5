/**
 * Outlier sets built offline (issue 15): synthetic noise, constant images, photometric and
 * geometric transforms of in-distribution images. Every set is seeded, on the pixel grid
 * (k/127.5 − 1 for integer k, as an uploaded PNG would be) and in the model's [−1, 1] range.
 *
 * The sets are split by KIND into two groups, so a score can be chosen on one group and reported
 * on the other (docs/ood.md, "Choosing the primary score"):
 *
 *   validation (fitOod chooses the primary on these, and its guard checks them):
 *     uniform_noise, smooth_noise, constant_mid, low_contrast
 *   held-out (only `prg ood-bench` reports them):
 *     gaussian_noise, salt_pepper, constant_black, constant_white, inverted, bright,
 *     and the near-OOD geometric transforms rot90, vflip, hflip, shift
 *
 * The two groups share no generator: Gaussian and salt-and-pepper noise are other distributions
 * than uniform and blurred noise; black and white are other levels than the mid-grey constants
 * (the same generator family, which docs/ood.md says); inversion and brightening are other
 * transforms than the contrast reduction.
 */
import { Rng } from '../rng';
import { LabeledImages, subsetImages } from './data';

export type OutlierKind = 'noise' | 'constant' | 'photometric' | 'geometric' | 'dataset' | 'user';
export type OutlierRole = 'validation' | 'held-out';

export interface OutlierSetDef {
  name: string;
  kind: OutlierKind;
  role: OutlierRole;
  /** One line for reports. */
  description: string;
  /**
   * `n` images of the set. `source` is in-distribution images (transforms act on them; the noise
   * and constant sets only take their shape).
   */
  make(source: LabeledImages, n: number, seed: number): LabeledImages;
}

/** Snap to the 8-bit grid of the [−1, 1] range (what decoding an uploaded image gives). */
function quantise(v: number): number {
  const k = Math.round((Math.max(-1, Math.min(1, v)) + 1) * 127.5);
  return k / 127.5 - 1;
}

/**
 * `n` images of `shape`, each filled by `fill` and then snapped to the 8-bit grid, so every
 * outlier set looks like decoded uploads (the scorers never see values an image cannot have).
 */
function quantisedImages(
  n: number,
  shape: [number, number, number],
  name: string,
  fill: (image: Float32Array, i: number) => void,
): LabeledImages {
  const D = shape[0] * shape[1] * shape[2];
  const data = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    const img = data.subarray(i * D, (i + 1) * D);
    fill(img, i);
    for (let p = 0; p < D; p++) img[p] = quantise(img[p]);
  }
  return { data, n, shape, name };
}

function synthetic(
  name: string,
  kind: OutlierKind,
  role: OutlierRole,
  description: string,
  pixel: (rng: Rng, image: Float32Array) => void,
): OutlierSetDef {
  return {
    name,
    kind,
    role,
    description,
    make(source, n, seed) {
      const rng = new Rng(`outliers:${name}:${seed}`);
      return quantisedImages(n, source.shape, name, (img) => pixel(rng, img));
    },
  };
}

function transformed(
  name: string,
  kind: OutlierKind,
  role: OutlierRole,
  description: string,
  map: (x: Float32Array, shape: [number, number, number]) => Float32Array,
): OutlierSetDef {
  return {
    name,
    kind,
    role,
    description,
    make(source, n, seed) {
      const s = subsetImages(source, n, seed + 7);
      const D = s.shape[0] * s.shape[1] * s.shape[2];
      return quantisedImages(s.n, s.shape, `${name}(${source.name})`, (img, i) =>
        img.set(map(s.data.subarray(i * D, (i + 1) * D), s.shape)),
      );
    },
  };
}

/** Box blur of one channel plane, radius r, edges clamped (separable). */
function boxBlur(x: Float32Array, h: number, w: number, r: number): Float32Array {
  const tmp = new Float32Array(h * w);
  const out = new Float32Array(h * w);
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      let s = 0;
      for (let d = -r; d <= r; d++) s += x[i * w + Math.min(w - 1, Math.max(0, j + d))];
      tmp[i * w + j] = s / (2 * r + 1);
    }
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      let s = 0;
      for (let d = -r; d <= r; d++) s += tmp[Math.min(h - 1, Math.max(0, i + d)) * w + j];
      out[i * w + j] = s / (2 * r + 1);
    }
  return out;
}

/** out[c, i, j] = x[c, src(i, j)], −1 (black) where src is outside. */
function remap(
  x: Float32Array,
  [c, h, w]: [number, number, number],
  src: (i: number, j: number) => [number, number],
): Float32Array {
  const out = new Float32Array(x.length).fill(-1);
  for (let ch = 0; ch < c; ch++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        const [si, sj] = src(i, j);
        if (si >= 0 && si < h && sj >= 0 && sj < w)
          out[(ch * h + i) * w + j] = x[(ch * h + si) * w + sj];
      }
  return out;
}

export const OUTLIER_SETS: OutlierSetDef[] = [
  // ---- validation kinds ----
  synthetic('uniform_noise', 'noise', 'validation', 'i.i.d. uniform pixels', (rng, img) => {
    for (let p = 0; p < img.length; p++) img[p] = 2 * rng.uniform() - 1;
  }),
  {
    ...synthetic('smooth_noise', 'noise', 'validation', '', () => {}),
    description: 'Gaussian noise box-blurred twice (radius 2), stretched to the full range',
    make(source, n, seed) {
      const [c, h, w] = source.shape;
      const D = c * h * w;
      const data = new Float32Array(n * D);
      const rng = new Rng(`outliers:smooth_noise:${seed}`);
      for (let i = 0; i < n; i++)
        for (let ch = 0; ch < c; ch++) {
          const plane = Float32Array.from({ length: h * w }, () => rng.normal());
          const b = boxBlur(boxBlur(plane, h, w, 2), h, w, 2);
          let lo = Infinity;
          let hi = -Infinity;
          for (const v of b) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
          const off = i * D + ch * h * w;
          for (let p = 0; p < h * w; p++)
            data[off + p] = quantise(hi > lo ? (2 * (b[p] - lo)) / (hi - lo) - 1 : 0);
        }
      return { data, n, shape: source.shape, name: 'smooth_noise' };
    },
  },
  synthetic(
    'constant_mid',
    'constant',
    'validation',
    'one grey level per image, uniform in pixel values 32..223',
    (rng, img) => img.fill((32 + rng.int(192)) / 127.5 - 1),
  ),
  transformed(
    'low_contrast',
    'photometric',
    'validation',
    'in-distribution images with contrast ×0.3 about mid-grey',
    (x) => x.map((v) => 0.3 * v),
  ),
  // ---- held-out kinds ----
  synthetic(
    'gaussian_noise',
    'noise',
    'held-out',
    'i.i.d. Gaussian pixels, mean mid-grey, sd 0.5 (64 levels), clipped',
    (rng, img) => {
      for (let p = 0; p < img.length; p++) img[p] = 0.5 * rng.normal();
    },
  ),
  synthetic('salt_pepper', 'noise', 'held-out', 'each pixel black or white (p = ½)', (rng, img) => {
    for (let p = 0; p < img.length; p++) img[p] = rng.uniform() < 0.5 ? -1 : 1;
  }),
  synthetic('constant_black', 'constant', 'held-out', 'all-black images', (_r, img) =>
    img.fill(-1),
  ),
  synthetic('constant_white', 'constant', 'held-out', 'all-white images', (_r, img) => img.fill(1)),
  transformed('inverted', 'photometric', 'held-out', '255 − pixel', (x) => x.map((v) => -v)),
  transformed(
    'bright',
    'photometric',
    'held-out',
    'pixel + 100 (clipped): a washed-out background',
    (x) => x.map((v) => v + 100 / 127.5),
  ),
  transformed('rot90', 'geometric', 'held-out', 'rotated 90° clockwise', (x, s) =>
    remap(x, s, (i, j) => [s[2] - 1 - j, i]),
  ),
  transformed('vflip', 'geometric', 'held-out', 'flipped upside down', (x, s) =>
    remap(x, s, (i, j) => [s[1] - 1 - i, j]),
  ),
  transformed('hflip', 'geometric', 'held-out', 'mirrored left–right', (x, s) =>
    remap(x, s, (i, j) => [i, s[2] - 1 - j]),
  ),
  transformed(
    'shift',
    'geometric',
    'held-out',
    'translated by a quarter of the width to the right, black fill',
    (x, s) => remap(x, s, (i, j) => [i, j - Math.round(s[2] / 4)]),
  ),
];

/** The sets of one role, in OUTLIER_SETS order. */
export function outlierSets(role?: OutlierRole): OutlierSetDef[] {
  return OUTLIER_SETS.filter((s) => role === undefined || s.role === role);
}

/** The validation sets that are noise or constant images: what fitOod's guard checks. */
export const GUARD_SETS = ['uniform_noise', 'smooth_noise', 'constant_mid'];
