import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ImageCodec } from './images';
import { InputError } from './input-error';

const repo = new ImageCodec(64 * 64);
const solid = (w: number, h: number, bg: { r: number; g: number; b: number; alpha?: number }) =>
  sharp({ create: { width: w, height: h, channels: 4, background: { alpha: 1, ...bg } } })
    .png()
    .toBuffer();

describe('ImageCodec.decode', () => {
  it('colour → 1 channel with libvips b-w (red 127, green 220, blue 76), x = p/127.5 − 1', async () => {
    const shape = { channels: 1, height: 2, width: 2 };
    for (const [bg, p] of [
      [{ r: 255, g: 0, b: 0 }, 127],
      [{ r: 0, g: 255, b: 0 }, 220],
      [{ r: 0, g: 0, b: 255 }, 76],
      [{ r: 255, g: 255, b: 255 }, 255],
    ] as const) {
      const x = await repo.decode(await solid(5, 3, bg), shape, 'img');
      expect(x).toHaveLength(4);
      for (const v of x) expect(v).toBeCloseTo(p / 127.5 - 1, 5);
    }
  });

  it('alpha is flattened onto black; grey is replicated to 3 channels in CHW order', async () => {
    const clear = await repo.decode(
      await solid(4, 4, { r: 255, g: 255, b: 255, alpha: 0 }),
      { channels: 1, height: 4, width: 4 },
      'a',
    );
    expect([...new Set(clear)]).toEqual([-1]);
    const grey = await sharp(Buffer.alloc(16, 51), { raw: { width: 4, height: 4, channels: 1 } })
      .png()
      .toBuffer();
    const rgb = await repo.decode(grey, { channels: 3, height: 4, width: 4 }, 'g');
    expect(rgb).toHaveLength(48);
    for (const v of rgb) expect(v).toBeCloseTo(51 / 127.5 - 1, 5);
  });

  it('resizes with fit fill: a left-black/right-white image keeps its halves', async () => {
    const px = Buffer.alloc(8 * 2);
    for (let y = 0; y < 2; y++) for (let x = 4; x < 8; x++) px[y * 8 + x] = 255;
    const png = await sharp(px, { raw: { width: 8, height: 2, channels: 1 } })
      .png()
      .toBuffer();
    const x = await repo.decode(png, { channels: 1, height: 4, width: 2 }, 'r');
    // 2 wide × 4 high: column 0 darker than column 1 on every row (stretched, not cropped; the
    // Lanczos-3 kernel blurs across the edge at 4:1, so only the contrast is asserted).
    for (let row = 0; row < 4; row++) expect(x[row * 2 + 1] - x[row * 2]).toBeGreaterThan(0.5);
  });

  it('rejects empty input, non-images and images over the pixel cap with InputErrors', async () => {
    const shape = { channels: 1, height: 2, width: 2 };
    await expect(repo.decode(Buffer.alloc(0), shape, 'e')).rejects.toBeInstanceOf(InputError);
    await expect(repo.decode(Buffer.from('nope'), shape, 'n')).rejects.toThrow(
      /not a readable image/,
    );
    await expect(
      repo.decode(await solid(65, 64, { r: 0, g: 0, b: 0 }), shape, 'big'),
    ).rejects.toThrow(/65×64 = 4160 pixels exceeds the cap of 4096/);
  });
});
