/**
 * Images [n, C, H, W] in the model's input space ([-1, 1], clamped) → one PNG grid, row-major,
 * with a 1-pixel gap (mid-grey) so neighbouring digits stay apart. Used by `prg sample`, the
 * samples endpoint and the report's sample and trajectory figures.
 */
import sharp from 'sharp';

export interface GridOptions {
  /** Images per row (default ⌈√n⌉). */
  cols?: number;
  /** Nearest-neighbour upscale (default 1). */
  scale?: number;
  gap?: number;
}

export async function imageGridPng(
  data: Float32Array,
  shape: readonly number[],
  o: GridOptions = {},
): Promise<Buffer> {
  const [n, c, h, w] = shape;
  if (shape.length !== 4 || n < 1 || data.length !== n * c * h * w)
    throw new Error(`imageGridPng: ${data.length} values for shape [${shape.join(', ')}]`);
  if (c !== 1 && c !== 3) throw new Error(`imageGridPng: ${c} channels (use 1 or 3)`);
  const cols = Math.max(1, Math.min(n, o.cols ?? Math.ceil(Math.sqrt(n))));
  const rows = Math.ceil(n / cols);
  const gap = o.gap ?? 1;
  const W = cols * w + (cols - 1) * gap;
  const H = rows * h + (rows - 1) * gap;
  const px = Buffer.alloc(W * H * c, 128);
  const hw = h * w;
  for (let i = 0; i < n; i++) {
    const ox = (i % cols) * (w + gap);
    const oy = Math.floor(i / cols) * (h + gap);
    const base = i * c * hw;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) {
          const v = Math.round((data[base + k * hw + y * w + x] + 1) * 127.5);
          px[((oy + y) * W + ox + x) * c + k] = Math.max(0, Math.min(255, v));
        }
  }
  const scale = o.scale ?? 1;
  return sharp(px, { raw: { width: W, height: H, channels: c as 1 | 3 } })
    .resize(W * scale, H * scale, { kernel: 'nearest' })
    .toColourspace(c === 1 ? 'b-w' : 'srgb')
    .png()
    .toBuffer();
}
