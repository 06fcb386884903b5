/**
 * Image bytes ⇄ model tensors, with sharp.
 *
 * Decoding (any PNG, JPEG or WebP → the model's input, docs in README "Server API"):
 * 1. the header is read first; formats other than PNG/JPEG/WebP and images over MAX_PIXELS
 *    (width × height) are rejected before any pixel is decoded (sharp's limitInputPixels backs it);
 * 2. alpha is flattened onto black (the datasets' background);
 * 3. colour mode: 1-channel models get libvips' sRGB → b-w conversion (sharp `grayscale()`, a
 *    perceptual lightness: pure red → 127, green → 220, blue → 76, pinned in the spec);
 *    3-channel models get sRGB (a grey image is replicated to 3 channels);
 * 4. size: resized to the model's height × width with `fit: 'fill'` (stretched, aspect ratio not
 *    kept, nothing cropped) and the Lanczos-3 kernel;
 * 5. x = pixel / 127.5 - 1, NCHW float32 (docs/engineering.md).
 * Truncated or corrupt data fails decoding (`failOn: 'warning'`) and is an InputError (a 4xx for
 * a server), never a crash.
 */
import sharp, { Metadata, OutputInfo } from 'sharp';
import { InputError } from './input-error';

export interface InputShape {
  channels: number;
  height: number;
  width: number;
}

const FORMATS = new Set(['png', 'jpeg', 'webp']);

/** Step 5: a pixel value 0…255 → the model's input space (manifest normalization minus-one-one). */
export const pixelToInput = (p: number): number => p / 127.5 - 1;

export class ImageCodec {
  /** `maxPixels`: the decoded-pixel cap per image (width × height), named in errors as MAX_PIXELS. */
  constructor(private readonly maxPixels: number) {}

  /** One image → CHW float32 in [-1, 1] of the given shape. `label` names it in errors. */
  async decode(bytes: Buffer, shape: InputShape, label: string): Promise<Float32Array> {
    if (bytes.length === 0) throw new InputError('INVALID_IMAGE', `${label}: empty`);
    let meta: Metadata;
    try {
      meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch (e) {
      throw new InputError(
        'INVALID_IMAGE',
        `${label}: not a readable image (${(e as Error).message})`,
      );
    }
    if (!meta.format || !FORMATS.has(meta.format))
      throw new InputError(
        'UNSUPPORTED_IMAGE_FORMAT',
        `${label}: format ${meta.format ?? 'unknown'} is not supported (PNG, JPEG or WebP)`,
        'unsupported',
      );
    const w = meta.width ?? 0;
    const h = meta.height ?? 0;
    if (w * h > this.maxPixels)
      throw new InputError(
        'IMAGE_TOO_LARGE',
        `${label}: ${w}×${h} = ${w * h} pixels exceeds the cap of ${this.maxPixels} (MAX_PIXELS)`,
        'too-large',
      );
    let raw: { data: Buffer; info: OutputInfo };
    try {
      let img = sharp(bytes, { limitInputPixels: this.maxPixels, failOn: 'warning' })
        .flatten({ background: { r: 0, g: 0, b: 0 } })
        .resize(shape.width, shape.height, { fit: 'fill', kernel: 'lanczos3' });
      img = shape.channels === 1 ? img.grayscale() : img.toColourspace('srgb');
      raw = await img.raw().toBuffer({ resolveWithObject: true });
    } catch (e) {
      throw new InputError(
        'INVALID_IMAGE',
        `${label}: cannot decode ${meta.format} data (${(e as Error).message}); truncated or corrupt?`,
      );
    }
    const { data, info } = raw;
    const hw = shape.height * shape.width;
    const out = new Float32Array(shape.channels * hw);
    const src = info.channels;
    if (info.width !== shape.width || info.height !== shape.height || src < 1)
      throw new InputError('INVALID_IMAGE', `${label}: decoded to an unexpected size`);
    // HWC uint8 → CHW float; a grey source replicates into every model channel.
    for (let c = 0; c < shape.channels; c++) {
      const sc = src === 1 ? 0 : Math.min(c, src - 1);
      for (let i = 0; i < hw; i++) out[c * hw + i] = pixelToInput(data[i * src + sc]);
    }
    return out;
  }

  /** CHW float32 in [-1, 1] → PNG (values outside are clamped). */
  async encodePng(chw: Float32Array, shape: InputShape): Promise<Buffer> {
    const { channels: c, height: h, width: w } = shape;
    const hw = h * w;
    const px = Buffer.alloc(hw * c);
    for (let i = 0; i < hw; i++)
      for (let k = 0; k < c; k++)
        px[i * c + k] = Math.max(0, Math.min(255, Math.round((chw[k * hw + i] + 1) * 127.5)));
    return sharp(px, { raw: { width: w, height: h, channels: c as 1 | 3 } })
      .toColourspace(c === 1 ? 'b-w' : 'srgb')
      .png()
      .toBuffer();
  }

  /** Frames side by side in one PNG row, each scaled by `scale` (nearest neighbour). */
  async sprite(frames: Float32Array[], shape: InputShape, scale: number): Promise<Buffer> {
    const { channels: c, height: h, width: w } = shape;
    const hw = h * w;
    const W = w * frames.length;
    const px = Buffer.alloc(W * h * c);
    frames.forEach((f, j) => {
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          for (let k = 0; k < c; k++) {
            const v = Math.round((f[k * hw + y * w + x] + 1) * 127.5);
            px[(y * W + j * w + x) * c + k] = Math.max(0, Math.min(255, v));
          }
    });
    return sharp(px, { raw: { width: W, height: h, channels: c as 1 | 3 } })
      .resize(W * scale, h * scale, { kernel: 'nearest' })
      .toColourspace(c === 1 ? 'b-w' : 'srgb')
      .png()
      .toBuffer();
  }
}
