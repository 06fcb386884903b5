import { describe, expect, it } from 'vitest';
import { PixelImages, modelLabels, splitHeldout, subsetImages, toLabeledImages } from './data';

const px: PixelImages = {
  images: Uint8Array.from({ length: 10 * 4 }, (_, i) => (i * 37) % 256),
  labels: Int32Array.from({ length: 10 }, (_, i) => i % 2),
  classes: ['cat', 'dog'],
  shape: [1, 2, 2],
  n: 10,
  source: 'pets:test',
};

describe('OOD image sets', () => {
  it('normalises uint8 pixels to [−1, 1] as pixel/127.5 − 1', () => {
    const d = toLabeledImages(px);
    expect(d.name).toBe('pets:test');
    expect(d.data[0]).toBe(-1);
    expect(d.data[1]).toBeCloseTo(37 / 127.5 - 1, 6);
    expect(toLabeledImages(d)).toBe(d);
  });

  it('subsets are seeded, ordered and keep labels with their images', () => {
    const d = toLabeledImages(px);
    const a = subsetImages(d, 4, 3);
    const b = subsetImages(d, 4, 3);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(a.n).toBe(4);
    // each picked image's label matches the source image it came from
    const firstPixel = (x: Float32Array, j: number) => Math.round((x[j * 4] + 1) * 127.5);
    for (let j = 0; j < 4; j++) {
      const src = Array.from({ length: 10 }, (_, i) => (i * 4 * 37) % 256).indexOf(
        firstPixel(a.data, j),
      );
      expect(a.labels![j]).toBe(src % 2);
    }
    expect(subsetImages(d, 20)).toBe(d);
  });

  it('splits a held-out part disjoint from the rest', () => {
    const d = toLabeledImages(px);
    const { train, heldout } = splitHeldout(d, 3, 1);
    expect(train.n + heldout.n).toBe(10);
    const key = (x: Float32Array, j: number) => x.subarray(j * 4, j * 4 + 4).join(',');
    const t = new Set(Array.from({ length: train.n }, (_, j) => key(train.data, j)));
    for (let j = 0; j < heldout.n; j++) expect(t.has(key(heldout.data, j))).toBe(false);
    expect(() => splitHeldout(d, 10)).toThrow(/hold out/);
  });

  it('maps labels onto the model classes by name, with a clear error otherwise', () => {
    const d = toLabeledImages(px);
    expect(Array.from(modelLabels(d, ['dog', 'cat']).subarray(0, 2))).toEqual([1, 0]);
    expect(() => modelLabels(d, ['dog', 'bird'])).toThrow(/label 0 \(cat\)/);
    expect(() => modelLabels({ ...d, labels: undefined }, ['a'])).toThrow(/no labels/);
  });
});
