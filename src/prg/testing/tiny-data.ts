/**
 * Test fixture: a small synthetic labelled dataset whose classes are easy to tell apart (class k
 * lights a bright band at a class-specific row, on top of seeded noise), for training tests.
 */
import { ImageDataset, ImageShape } from '../data';
import { Rng } from '../rng';

export function tinyDataset(
  o: { n?: number; classes?: number; shape?: ImageShape; seed?: number } = {},
): ImageDataset {
  const n = o.n ?? 32;
  const k = o.classes ?? 2;
  const shape: ImageShape = o.shape ?? [1, 8, 8];
  const [c, h, w] = shape;
  const rng = new Rng(o.seed ?? 0);
  const images = new Uint8Array(n * c * h * w);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const y = i % k;
    labels[i] = y;
    const row = Math.floor(((y + 0.5) * h) / k);
    for (let ch = 0; ch < c; ch++)
      for (let r = 0; r < h; r++)
        for (let x = 0; x < w; x++) {
          const base = r === row ? 230 : 30;
          images[((i * c + ch) * h + r) * w + x] = Math.max(
            0,
            Math.min(255, base + rng.int(40) - 20),
          );
        }
  }
  return {
    images,
    labels,
    classes: Array.from({ length: k }, (_, i) => `c${i}`),
    shape,
    n,
    source: 'tiny-synthetic',
  };
}
