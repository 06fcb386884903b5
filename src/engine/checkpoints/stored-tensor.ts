/**
 * A tensor as a checkpoint stores it: element type, shape, and a way to read its values. Nothing
 * is read until `toFloat32()` is called, so a multi-gigabyte file is converted one tensor at a
 * time.
 */
import { ITEM_SIZE, StoredDType, elementReader, toFloat32 } from './dtypes';

export interface StoredTensor {
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  /** The values as float32 in C order (views, offsets and strides applied). */
  toFloat32(): Promise<Float32Array>;
}

export function isStoredTensor(v: unknown): v is StoredTensor {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as StoredTensor).toFloat32 === 'function' &&
    Array.isArray((v as StoredTensor).shape)
  );
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/**
 * Gather a (possibly non-contiguous) view out of a storage's bytes: element (i_0, …, i_k) is
 * storage[offset + Σ i_j · stride_j]. The caller has checked that every index is in range.
 */
export function gatherStrided(
  dtype: StoredDType,
  storage: Uint8Array,
  offset: number,
  shape: readonly number[],
  stride: readonly number[],
): Float32Array {
  const n = numelOf(shape);
  const contiguous = contiguousStrides(shape);
  if (shape.every((d, i) => d === 1 || stride[i] === contiguous[i])) {
    const size = ITEM_SIZE[dtype];
    return toFloat32(dtype, storage.subarray(offset * size, (offset + n) * size), n);
  }
  const read = elementReader(dtype, storage);
  const out = new Float32Array(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = offset;
  for (let o = 0; o < n; o++) {
    out[o] = read(src);
    // Odometer increment over the view's indices, last axis fastest.
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += stride[d];
      if (idx[d] < shape[d]) break;
      src -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** Largest storage index a view touches (+1), or 0 for an empty view. */
export function viewExtent(offset: number, shape: readonly number[], stride: readonly number[]) {
  if (shape.some((d) => d === 0)) return 0;
  let end = offset;
  shape.forEach((d, i) => (end += (d - 1) * stride[i]));
  return end + 1;
}
