/**
 * Element types found in checkpoints and their conversion to float32 (the engine's only
 * parameter type). Every conversion reads little-endian bytes; big-endian PyTorch archives are
 * byte-swapped first (swapBytes).
 */
export const STORED_DTYPES = [
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
] as const;
export type StoredDType = (typeof STORED_DTYPES)[number];

export const ITEM_SIZE: Record<StoredDType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** IEEE half → float32 through its bit pattern (subnormals, infinities and NaN included). */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 0x1f) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Reverse the bytes of every item in place (big-endian archive → little-endian). */
export function swapBytes(bytes: Uint8Array, itemSize: number): void {
  if (itemSize === 1) return;
  for (let i = 0; i < bytes.length; i += itemSize)
    for (let a = i, b = i + itemSize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
}

/**
 * Element `index` of a little-endian buffer as a JS number, through a DataView so unaligned
 * storages (zip members, safetensors payloads) need no copy.
 */
export function elementReader(dtype: StoredDType, bytes: Uint8Array): (index: number) => number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'float32':
      return (i) => dv.getFloat32(4 * i, true);
    case 'float16':
      return (i) => halfToFloat(dv.getUint16(2 * i, true));
    case 'bfloat16': {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(1);
      const f = new Float32Array(bits.buffer);
      return (i) => {
        bits[0] = dv.getUint16(2 * i, true) << 16;
        return f[0];
      };
    }
    case 'float64':
      return (i) => dv.getFloat64(8 * i, true);
    case 'int64':
      return (i) => Number(dv.getBigInt64(8 * i, true));
    case 'int32':
      return (i) => dv.getInt32(4 * i, true);
    case 'int16':
      return (i) => dv.getInt16(2 * i, true);
    case 'int8':
      return (i) => dv.getInt8(i);
    case 'uint8':
    case 'bool':
      return (i) => dv.getUint8(i);
  }
}

/** A whole contiguous buffer as float32 (fast paths for the common float types). */
export function toFloat32(dtype: StoredDType, bytes: Uint8Array, n: number): Float32Array {
  if (dtype === 'float32') {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(bytes.subarray(0, 4 * n));
    return out;
  }
  if (dtype === 'bfloat16') {
    const u = new Uint32Array(n);
    for (let i = 0; i < n; i++) u[i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16;
    return new Float32Array(u.buffer);
  }
  const read = elementReader(dtype, bytes);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = read(i);
  return out;
}
