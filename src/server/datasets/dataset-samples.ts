/**
 * A few images of each class of a stored dataset, as small PNGs, for the dashboard's thumbnails
 * (GET /datasets/:id/samples). Stored datasets never change, so the first images of each class (in
 * file-name order, or IDX order) are the same on every call.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { readIdxPair } from '../../prg/data';

/** Thumbnails are at most this many pixels on a side (larger images are shrunk, never enlarged). */
const THUMB_SIZE = 64;
/** Classes beyond this get no thumbnails (their counts are still in the dataset's info). */
export const MAX_SAMPLE_CLASSES = 64;

/** What the thumbnails read of a stored dataset (datasets.service.ts's DatasetLocation is one). */
export interface StoredImages {
  info: { id: string; classes: string[]; counts: number[] };
  /** The class-folder root, or the IDX images file beside `labelsPath`. */
  imagesPath: string;
  labelsPath?: string;
}

export interface ClassSamples {
  name: string;
  count: number;
  /** base64 PNGs */
  images: string[];
}

type Image = ReturnType<typeof sharp>;

const thumb = (img: Image) =>
  img
    .resize(THUMB_SIZE, THUMB_SIZE, { fit: 'inside', withoutEnlargement: true })
    .png()
    .toBuffer()
    .then((b: Buffer) => b.toString('base64'));

/** N×C×H×W uint8 image `i` as a sharp image (sharp takes interleaved H×W×C). */
function rawImage(px: Uint8Array, i: number, [c, h, w]: number[]): Image {
  const plane = h * w;
  const hwc = Buffer.alloc(c * plane);
  for (let p = 0; p < plane; p++)
    for (let ch = 0; ch < c; ch++) hwc[p * c + ch] = px[i * c * plane + ch * plane + p];
  return sharp(hwc, { raw: { width: w, height: h, channels: c as 1 | 3 } });
}

export async function datasetSamples(loc: StoredImages, perClass: number): Promise<ClassSamples[]> {
  const { info } = loc;
  const shown = info.classes.slice(0, MAX_SAMPLE_CLASSES);
  if (loc.labelsPath) {
    const ds = await readIdxPair(loc.imagesPath, loc.labelsPath, info.id, info.classes);
    const picks: number[][] = shown.map(() => []);
    for (let i = 0; i < ds.n; i++) {
      const l = ds.labels[i];
      if (l < picks.length && picks[l].length < perClass) picks[l].push(i);
    }
    return Promise.all(
      shown.map(async (name, k) => ({
        name,
        count: info.counts[k],
        images: await Promise.all(picks[k].map((i) => thumb(rawImage(ds.images, i, ds.shape)))),
      })),
    );
  }
  return Promise.all(
    shown.map(async (name, k) => {
      const dir = path.join(loc.imagesPath, name);
      const files = (await fs.readdir(dir)).sort().slice(0, perClass);
      return {
        name,
        count: info.counts[k],
        images: await Promise.all(files.map((f) => thumb(sharp(path.join(dir, f))))),
      };
    }),
  );
}
