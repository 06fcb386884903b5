/**
 * Deterministic weights from a tensor's key, bit-identical to `hashed_weights` in
 * scripts/fixtures/make-import-fixtures.py: a full-size upstream net can be checked against its
 * reference outputs without committing its weights (the 35.7 M-parameter torchcfm U-Net).
 *
 *   seed = FNV-1a(key);  u_i = (fmix32(seed ^ (i · 0x9E3779B1)) >>> 8) / 2^24 · 2 − 1
 *   rank ≥ 2: u · 0.5 · √(3 / fan_in) (fan_in = numel / shape[0]); norm weights 1 + 0.2u;
 *   other vectors 0.2u. float64 arithmetic, one rounding to float32 — the same in both languages.
 */
export function hashedWeights(key: string, shape: readonly number[]): Float32Array {
  let seed = 0x811c9dc5;
  for (const b of new TextEncoder().encode(key)) seed = Math.imul(seed ^ b, 0x01000193) >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const scale =
    shape.length >= 2
      ? { mul: 0.5 * Math.sqrt(3 / (n / shape[0])), add: 0 }
      : key.includes('norm') && key.endsWith('weight')
        ? { mul: 0.2, add: 1 }
        : { mul: 0.2, add: 0 };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let z = (seed ^ Math.imul(i, 0x9e3779b1)) >>> 0;
    z ^= z >>> 16;
    z = Math.imul(z, 0x85ebca6b) >>> 0;
    z ^= z >>> 13;
    z = Math.imul(z, 0xc2b2ae35) >>> 0;
    z ^= z >>> 16;
    const u = ((z >>> 8) / 2 ** 24) * 2 - 1;
    out[i] = scale.add + u * scale.mul;
  }
  return out;
}
