import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchLoader,
  IdxTensor,
  ImageDataset,
  buildFashionMnist,
  classCounts,
  convertDataset,
  denormalizePixels,
  encodeIdx,
  idxPairToDataset,
  loadDataset,
  loadImageFolder,
  normalizePixels,
  parseDataSpec,
  parseIdx,
  readIdxPair,
  writeIdxPair,
} from './index';

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'prg-data-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A tiny dataset whose pixel values encode (image, channel, y, x). */
function tiny(n: number, shape: [number, number, number], classes = 3): ImageDataset {
  const [c, h, w] = shape;
  const images = new Uint8Array(n * c * h * w).map((_, k) => (k * 7) % 256);
  return {
    images,
    labels: Int32Array.from({ length: n }, (_, i) => i % classes),
    classes: Array.from({ length: classes }, (_, i) => `c${i}`),
    shape,
    n,
    source: 'tiny',
  };
}

describe('IDX', () => {
  it('round-trips every element type', () => {
    for (const t of [
      { type: 'uint8', dims: [2, 3], data: Uint8Array.from([0, 1, 2, 253, 254, 255]) },
      { type: 'int8', dims: [3], data: Int8Array.from([-128, 0, 127]) },
      { type: 'int16', dims: [2], data: Int16Array.from([-300, 300]) },
      { type: 'int32', dims: [2, 1], data: Int32Array.from([-70000, 70000]) },
      { type: 'float32', dims: [2], data: Float32Array.from([1.5, -2.25]) },
      { type: 'float64', dims: [1], data: Float64Array.from([Math.PI]) },
    ] as IdxTensor[]) {
      const back = parseIdx(encodeIdx(t));
      expect(back.type).toBe(t.type);
      expect(back.dims).toEqual(t.dims);
      expect([...back.data]).toEqual([...t.data]);
    }
  });

  it('reads the big-endian header as specified', () => {
    const bytes = encodeIdx({
      type: 'uint8',
      dims: [1, 2, 2],
      data: Uint8Array.from([1, 2, 3, 4]),
    });
    expect([...bytes.slice(0, 8)]).toEqual([0, 0, 0x08, 3, 0, 0, 0, 1]);
    expect(bytes.length).toBe(4 + 12 + 4);
  });

  it('rejects bad files with a clear message', () => {
    const good = encodeIdx({ type: 'uint8', dims: [4], data: new Uint8Array(4) });
    expect(() => parseIdx(good.slice(0, good.length - 1), 'f.idx')).toThrow(/f.idx: .*truncated/);
    expect(() => parseIdx(Uint8Array.from([1, 2, 8, 1]))).toThrow(/not an IDX file/);
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x42, 1, 0, 0, 0, 0]))).toThrow(/type code 0x42/);
  });

  it('writes and reads an image/label pair (1 and 3 channels, HWC files transposed)', async () => {
    for (const shape of [
      [1, 4, 5],
      [3, 2, 3],
    ] as [number, number, number][]) {
      const ds = tiny(5, shape);
      const img = path.join(tmp, `i${shape[0]}.idx`);
      const lab = path.join(tmp, `l${shape[0]}.idx`);
      await writeIdxPair(ds, img, lab);
      const back = await readIdxPair(img, lab);
      expect(back.shape).toEqual(shape);
      expect([...back.images]).toEqual([...ds.images]);
      expect([...back.labels]).toEqual([...ds.labels]);
      expect(back.classes).toEqual(['0', '1', '2']);
    }
    // [N, H, W, C] with C = 3: pixel (y, x, c) = 100·c + 10·y + x.
    const hwc = Uint8Array.from({ length: 2 * 2 * 3 }, (_, k) => {
      const c = k % 3;
      const p = Math.floor(k / 3);
      return 100 * c + 10 * Math.floor(p / 2) + (p % 2);
    });
    const ds = idxPairToDataset(
      { type: 'uint8', dims: [1, 2, 2, 3], data: hwc },
      { type: 'uint8', dims: [1], data: Uint8Array.from([0]) },
      'hwc',
    );
    expect(ds.shape).toEqual([3, 2, 2]);
    expect([...ds.images]).toEqual([0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211]);
    expect(() =>
      idxPairToDataset(
        { type: 'uint8', dims: [2, 2, 2], data: new Uint8Array(8) },
        { type: 'uint8', dims: [3], data: new Uint8Array(3) },
        'x',
      ),
    ).toThrow(/2 images but 3 labels/);
  });
});

describe('builtin datasets', () => {
  it('mnist:test is the original 10k test set', async () => {
    const ds = await loadDataset('mnist:test');
    expect(ds.n).toBe(10000);
    expect(ds.shape).toEqual([1, 28, 28]);
    expect(ds.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    // The first test digits of MNIST are 7 2 1 0 4 1 4 9 5 9.
    expect([...ds.labels.slice(0, 10)]).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    expect(classCounts(ds).reduce((a, b) => a + b, 0)).toBe(10000);
    expect(Math.max(...ds.images.subarray(0, 784))).toBe(255);
    const small = await loadDataset('mnist:test', { limit: 3, shape: [3, 8, 8] });
    expect(small.n).toBe(3);
    expect(small.shape).toEqual([3, 8, 8]);
  });

  it('fashion-mnist builder: drops empty rows, splits the first k per class as test, mixes order', async () => {
    // A miniature of the package layout: clothes/<class>.json = {"data": [[784 pixels], ...]}.
    const dir = path.join(tmp, 'clothes');
    await fs.mkdir(dir);
    for (let c = 0; c < 10; c++) {
      const rows: number[][] = [0, 1, 2].map((i) => new Array(784).fill(c * 10 + i));
      if (c === 0) rows.splice(1, 0, []); // class 0's real file has empty rows
      await fs.writeFile(path.join(dir, `${c}.json`), JSON.stringify({ data: rows }));
    }
    const { train, test } = await buildFashionMnist({ dir, perClass: 3, testPerClass: 1 });
    expect(test.n).toBe(10);
    expect(train.n).toBe(20);
    expect(classCounts(test)).toEqual(new Array(10).fill(1));
    expect(train.classes[9]).toBe('Ankle boot');
    for (let i = 0; i < test.n; i++) expect(test.images[i * 784]).toBe(test.labels[i] * 10);
    for (let i = 0; i < train.n; i++) expect(train.images[i * 784] % 10).toBeGreaterThan(0);
    expect([...test.labels]).not.toEqual([...test.labels].sort((a, b) => a - b));
    await expect(buildFashionMnist({ dir, perClass: 2, testPerClass: 1 })).rejects.toThrow(
      /0.json: 3 non-empty images, expected 2/,
    );
    const full = new Array(784).fill(0);
    await fs.writeFile(path.join(dir, '3.json'), JSON.stringify({ data: [[1, 2], full, full] }));
    await expect(buildFashionMnist({ dir, perClass: 3, testPerClass: 1 })).rejects.toThrow(
      /3.json: image 0 has 2 pixels/,
    );
  });
});

describe('image folders', () => {
  let root: string;
  beforeAll(async () => {
    root = path.join(tmp, 'folder');
    // Classes deliberately created out of order: labels follow sorted names.
    for (const c of ['zebra', 'apple']) await fs.mkdir(path.join(root, c), { recursive: true });
    const gray = (v: number) =>
      sharp(Buffer.alloc(6 * 4, v), { raw: { width: 6, height: 4, channels: 1 } }).toColourspace(
        'b-w',
      );
    const rgb = (r: number, g: number, b: number) =>
      sharp(Buffer.from(new Array(6 * 4).fill([r, g, b]).flat()), {
        raw: { width: 6, height: 4, channels: 3 },
      });
    await gray(200)
      .png()
      .toFile(path.join(root, 'apple', 'a1.png'));
    await rgb(255, 0, 0)
      .png()
      .toFile(path.join(root, 'apple', 'a2.PNG'));
    await gray(50)
      .webp({ lossless: true })
      .toFile(path.join(root, 'zebra', 'z1.webp'));
    await gray(100)
      .jpeg({ quality: 100 })
      .toFile(path.join(root, 'zebra', 'z2.jpeg'));
    await fs.writeFile(path.join(root, 'zebra', 'notes.txt'), 'not an image');
    await fs.writeFile(path.join(root, 'apple', 'broken.jpg'), 'definitely not a jpeg');
    // A valid header with half the pixel data: must be reported, not decoded partially.
    const whole = await sharp({
      create: { width: 32, height: 32, channels: 3, background: '#f00' },
    })
      .png({ compressionLevel: 0 })
      .toBuffer();
    await fs.writeFile(path.join(root, 'zebra', 'cut.png'), whole.subarray(0, whole.length / 2));
  });

  it('fails on a corrupt file by default, naming it', async () => {
    await expect(loadImageFolder(root)).rejects.toThrow(/apple\/broken\.jpg cannot be decoded/);
  });

  it('skips corrupt files with a warning listing their paths', async () => {
    const warnings: string[] = [];
    const ds = await loadDataset(root, { onCorrupt: 'skip', warn: (m) => warnings.push(m) });
    expect(ds.classes).toEqual(['apple', 'zebra']);
    expect(ds.n).toBe(4);
    expect([...ds.labels]).toEqual([0, 0, 1, 1]);
    expect(ds.shape).toEqual([1, 4, 6]); // first image is grayscale
    expect(ds.skipped?.map((s) => path.basename(s.path))).toEqual(['broken.jpg', 'cut.png']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(path.join(root, 'apple', 'broken.jpg'));
    expect(warnings[0]).toContain(path.join(root, 'zebra', 'cut.png'));
    // Pixels: gray 200, red → luminance, gray 50 (lossless webp), gray ≈100 (jpeg).
    expect(ds.images[0]).toBe(200);
    expect(ds.images[24 * 2]).toBe(50);
    expect(Math.abs(ds.images[24 * 3] - 100)).toBeLessThanOrEqual(2);
  });

  it('converts to a target shape (resize + channels)', async () => {
    const ds = await loadDataset(`folder:${root}`, {
      onCorrupt: 'skip',
      warn: () => {},
      shape: [3, 8, 8],
    });
    expect(ds.shape).toEqual([3, 8, 8]);
    expect(ds.images.length).toBe(4 * 3 * 64);
    // The red image (second): R plane 255, G and B planes 0.
    const red = ds.images.subarray(192, 384);
    expect(red[0]).toBe(255);
    expect(red[64]).toBe(0);
    expect(red[128]).toBe(0);
    // Gray → RGB replicates.
    expect([ds.images[0], ds.images[64], ds.images[128]]).toEqual([200, 200, 200]);
  });

  it('refuses mixed sizes without a target shape', async () => {
    const mixed = path.join(tmp, 'mixed');
    await fs.mkdir(path.join(mixed, 'a'), { recursive: true });
    const img = (w: number) =>
      sharp({ create: { width: w, height: 4, channels: 3, background: '#000' } });
    await img(4)
      .png()
      .toFile(path.join(mixed, 'a', '1.png'));
    await img(5)
      .png()
      .toFile(path.join(mixed, 'a', '2.png'));
    await expect(loadImageFolder(mixed)).rejects.toThrow(/2.png is 5×4, the dataset is 4×4/);
    await expect(loadDataset(path.join(tmp, 'nope'))).rejects.toThrow(/is not a directory/);
  });

  it('convertDataset: gray → RGB replicates, same shape is a no-op', async () => {
    const ds = tiny(2, [1, 2, 2]);
    expect(await convertDataset(ds, [1, 2, 2])).toBe(ds);
    const rgb = await convertDataset(ds, [3, 2, 2]);
    expect([...rgb.images.subarray(0, 4)]).toEqual([...ds.images.subarray(0, 4)]);
    expect([...rgb.images.subarray(4, 8)]).toEqual([...ds.images.subarray(0, 4)]);
  });
});

describe('parseDataSpec', () => {
  it('parses every form and rejects bad ones', () => {
    expect(parseDataSpec('mnist:train')).toEqual({ kind: 'mnist', split: 'train' });
    expect(parseDataSpec('fashion-mnist:test')).toEqual({ kind: 'fashion-mnist', split: 'test' });
    expect(parseDataSpec('idx:a.idx,b.idx')).toEqual({
      kind: 'idx',
      images: 'a.idx',
      labels: 'b.idx',
    });
    expect(parseDataSpec('folder:/x/y')).toEqual({ kind: 'folder', path: '/x/y' });
    expect(parseDataSpec('./data/imgs')).toEqual({ kind: 'folder', path: './data/imgs' });
    expect(() => parseDataSpec('mnist:val')).toThrow(/split must be train or test/);
    expect(() => parseDataSpec('cifar:train')).toThrow(/is not one of/);
    expect(() => parseDataSpec('idx:a.idx')).toThrow(/idx:<images file>,<labels file>/);
  });
});

describe('normalisation and batches', () => {
  it('maps pixels to [-1, 1] and back', () => {
    const px = Uint8Array.from([0, 1, 127, 128, 255]);
    const x = normalizePixels(px);
    expect(x[0]).toBe(-1);
    expect(x[4]).toBe(1);
    expect(x[2]).toBeCloseTo(127 / 127.5 - 1, 7);
    expect([...denormalizePixels(x)]).toEqual([...px]);
  });

  it('shuffles per epoch (seeded), covers every image once, honours drop_last', () => {
    const ds = tiny(10, [1, 2, 2]);
    const a = new BatchLoader(ds, { batchSize: 4, seed: 1 });
    const b = new BatchLoader(ds, { batchSize: 4, seed: 1 });
    const seen = (l: BatchLoader, e: number) => [...l.epoch(e)].flatMap((bt) => [...bt.indices]);
    expect(a.batchesPerEpoch).toBe(3);
    expect(seen(a, 0)).toEqual(seen(b, 0));
    expect([...seen(a, 0)].sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
    expect(seen(a, 0)).not.toEqual(seen(a, 1));
    expect(seen(a, 0)).not.toEqual(seen(new BatchLoader(ds, { batchSize: 4, seed: 2 }), 0));
    const dl = new BatchLoader(ds, { batchSize: 4, dropLast: true, shuffle: false });
    const batches = [...dl.epoch(0)];
    expect(batches.map((bt) => bt.n)).toEqual([4, 4]);
    expect([...batches[1].indices]).toEqual([4, 5, 6, 7]);
    const first = batches[0];
    expect(first.x[0]).toBeCloseTo(ds.images[0] / 127.5 - 1, 7);
    expect([...first.labels]).toEqual([0, 1, 2, 0]);
    expect(() => new BatchLoader(ds, { batchSize: 0 })).toThrow(/batchSize/);
  });

  it('horizontal flip and padded random crop move pixels as specified', () => {
    const ds = tiny(1, [2, 3, 4]);
    const plain = [...new BatchLoader(ds, { batchSize: 1 }).epoch(0)][0].x;
    const flipped = [...new BatchLoader(ds, { batchSize: 1, augment: { hflip: 1 } }).epoch(0)][0].x;
    for (let c = 0; c < 2; c++)
      for (let y = 0; y < 3; y++)
        for (let x = 0; x < 4; x++)
          expect(flipped[(c * 3 + y) * 4 + x]).toBe(plain[(c * 3 + y) * 4 + 3 - x]);

    // Every crop is a shift (dy, dx) ∈ [-2, 2]² of the image, with −1 (black) where it leaves it.
    const shifts = new Set<string>();
    const loader = new BatchLoader(ds, { batchSize: 1, seed: 3, augment: { cropPadding: 2 } });
    for (let e = 0; e < 60; e++) {
      const got = [...loader.epoch(e)][0].x;
      let match: string | null = null;
      for (let dy = -2; dy <= 2 && !match; dy++)
        for (let dx = -2; dx <= 2 && !match; dx++) {
          let ok = true;
          for (let c = 0; c < 2 && ok; c++)
            for (let y = 0; y < 3 && ok; y++)
              for (let x = 0; x < 4 && ok; x++) {
                const sy = y + dy;
                const sx = x + dx;
                const want =
                  sy < 0 || sy >= 3 || sx < 0 || sx >= 4 ? -1 : plain[(c * 3 + sy) * 4 + sx];
                ok = got[(c * 3 + y) * 4 + x] === want;
              }
          if (ok) match = `${dy},${dx}`;
        }
      expect(match).not.toBeNull();
      shifts.add(match!);
    }
    expect(shifts.size).toBeGreaterThan(10); // 25 possible shifts, 60 draws
  });
});
