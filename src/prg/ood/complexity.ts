/**
 * Input complexity (Serrà et al. 2020, "Input complexity and out-of-distribution detection with
 * likelihood-based generative models"): the length L(x) of the image under a lossless general
 * compressor, here PNG at the maximum compression level (sharp/libpng), in bits per dimension.
 * Simple images (a thin digit on black) compress well and are also given high likelihood by
 * generative models; subtracting L(x) cancels that shared bias. See scorers.ts.
 */
import sharp from 'sharp';

/** 8-bit pixels of NCHW [−1, 1] images, interleaved HWC as PNG wants them. */
export function toPixels(x: Float32Array, c: number, h: number, w: number): Buffer {
  const out = Buffer.alloc(c * h * w);
  for (let ch = 0; ch < c; ch++)
    for (let i = 0; i < h * w; i++) {
      const v = Math.round((x[ch * h * w + i] + 1) * 127.5);
      out[i * c + ch] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  return out;
}

/** PNG length of each image in bits per dimension (header included: a constant offset). */
export async function pngBitsPerDim(
  images: Float32Array,
  n: number,
  shape: readonly [number, number, number],
): Promise<Float64Array> {
  const [c, h, w] = shape;
  const D = c * h * w;
  if (images.length !== n * D)
    throw new Error(`complexity: ${images.length} values for ${n} images of ${c}×${h}×${w}`);
  if (c !== 1 && c !== 3) throw new Error(`complexity: ${c} channels (PNG needs 1 or 3)`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const px = toPixels(images.subarray(i * D, (i + 1) * D), c, h, w);
    const png = await sharp(px, { raw: { width: w, height: h, channels: c } })
      .toColourspace(c === 1 ? 'b-w' : 'srgb')
      .png({ compressionLevel: 9, adaptiveFiltering: true, palette: false })
      .toBuffer();
    out[i] = (8 * png.byteLength) / D;
  }
  return out;
}
