/**
 * Uploaded labelled datasets under DATA_DIR/<id>/:
 *   dataset.json                       DatasetInfo
 *   images/<class>/<file>              ImageFolder uploads (as extracted, checked by decoding)
 *   images.idx, labels.idx             IDX uploads (decompressed)
 * An upload is extracted and validated in DATA_DIR/.tmp-<id>/ and renamed into place only when
 * valid; the temp dir is removed on every other path, so a dataset directory is never half-written.
 */
import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { DatasetError, listSome } from './dataset-errors';
import { DatasetsConfig } from './datasets.config';
import { gunzipIfNeeded } from './idx';
import { classCounts, IdxTensor, idxPairToDataset, ImageDataset, parseIdx } from '../../prg/data';
import { ClassSamples, datasetSamples } from './dataset-samples';
import { planImageFolder } from './image-folder';
import { SafeZip } from './safe-zip';
import { ownerInName, removeStaleTemp, withOwner } from '../common/stale-temp';
import { isStorageFull, storageFullError } from '../common/storage-full';
import type { DatasetFormat, DatasetResponse } from './dataset.dto';

export const DATASETS_CONFIG = Symbol('DATASETS_CONFIG');

/** A stored dataset as the API reports it: the response class (dataset.dto.ts) is the type. */
export type DatasetInfo = DatasetResponse;

export interface DatasetLocation {
  info: DatasetInfo;
  dir: string;
  /** Files the trainer reads: the class-folder root, or the two IDX files. */
  imagesPath: string;
  labelsPath?: string;
}

const ID_RE = /^ds_[0-9a-f]{12}$/;
const SHARP_FORMATS = new Set(['png', 'jpeg', 'webp']);
/** Images decoded at once while validating (sharp also uses its own thread pool per image). */
const DECODE_CONCURRENCY = 4;

/** Who may veto a delete (the jobs module: a dataset a queued or running job reads). */
export type DatasetUsageCheck = (id: string) => Promise<string | null>;

@Injectable()
export class DatasetsService implements OnModuleInit {
  private readonly logger = new Logger('Datasets');
  private usageChecks: DatasetUsageCheck[] = [];

  constructor(@Inject(DATASETS_CONFIG) private readonly config: DatasetsConfig) {}

  async onModuleInit(): Promise<void> {
    await fs.mkdir(this.config.dataDir, { recursive: true });
    await fs.mkdir(this.config.uploadTmpDir, { recursive: true });
    // Leftovers of a process killed mid-upload: at once when it ran on this host and is gone,
    // else after an hour (another replica sharing the volume may be uploading right now).
    const maxAgeMs = 3600_000;
    const removed = [
      ...(await removeStaleTemp(this.config.dataDir, {
        match: (n) => n.startsWith('.tmp-') || n.startsWith('.trash-'),
        owner: ownerInName,
        maxAgeMs,
      })),
      ...(await removeStaleTemp(this.config.uploadTmpDir, {
        match: (n) => n.startsWith('upload-'),
        owner: ownerInName,
        maxAgeMs,
      })),
    ];
    if (removed.length)
      this.logger.warn(
        `removed ${removed.length} temp file(s) of a stopped process: ${listSome(removed)}`,
      );
  }

  onDelete(check: DatasetUsageCheck): void {
    this.usageChecks.push(check);
  }

  /** A multipart upload: `file` (zip) or `images` + `labels` (IDX); text fields `name`, `classes`. */
  async createFromUpload(
    files: Partial<Record<'file' | 'images' | 'labels', { path: string }[]>>,
    fields: Record<string, unknown>,
  ): Promise<DatasetInfo> {
    const name = typeof fields.name === 'string' && fields.name !== '' ? fields.name : undefined;
    const zip = files.file?.[0];
    const images = files.images?.[0];
    const labels = files.labels?.[0];
    if (zip && !images && !labels) return this.createFromZip(zip.path, name);
    if (images && labels && !zip) {
      const classes =
        typeof fields.classes === 'string' && fields.classes.trim() !== ''
          ? fields.classes.split(',').map((c) => c.trim())
          : undefined;
      return this.createFromIdx(images.path, labels.path, name, classes);
    }
    throw new DatasetError(
      400,
      'UPLOAD_MISSING',
      images || labels
        ? 'an IDX upload needs both file fields "images" and "labels" (and no "file")'
        : 'expected multipart/form-data with a zip in field "file", or IDX files in fields "images" and "labels"',
    );
  }

  /** ImageFolder zip → validated dataset. */
  async createFromZip(zipPath: string, name?: string): Promise<DatasetInfo> {
    return this.create(name, async (tmp) => {
      const zip = await SafeZip.open(zipPath, this.config);
      try {
        const plan = planImageFolder(zip.items);
        const root = path.join(tmp, 'images');
        for (const cls of plan.classes) await fs.mkdir(path.join(root, cls), { recursive: true });
        for (const f of plan.files) {
          const dest = path.join(root, f.cls, f.base);
          // Belt and braces: names were checked in SafeZip; the joined path must stay inside.
          if (!dest.startsWith(root + path.sep))
            throw new DatasetError(400, 'ZIP_UNSAFE_PATH', `zip entry ${f.item.name} escapes`);
          await zip.extract(f.item, dest);
        }
        const counts = plan.classes.map((c) => plan.files.filter((f) => f.cls === c).length);
        const shapes = await this.checkImages(
          plan.files.map((f) => ({ file: path.join(root, f.cls, f.base), label: f.item.name })),
        );
        return { format: 'imagefolder' as const, classes: plan.classes, counts, shapes };
      } finally {
        zip.close();
      }
    });
  }

  /** IDX image + label files → validated dataset. `classNames` optional, one per label value. */
  async createFromIdx(
    imagesPath: string,
    labelsPath: string,
    name?: string,
    classNames?: string[],
  ): Promise<DatasetInfo> {
    return this.create(name, async (tmp) => {
      // Parsed by the data layer (src/prg/data/idx.ts), so an upload is accepted exactly when the
      // trainer can read it: images uint8 [N,H,W], [N,C,H,W] or [N,H,W,C]; labels 1-D integers.
      const cap = this.config.maxUncompressedBytes;
      const imagesBytes = gunzipIfNeeded(await fs.readFile(imagesPath), 'images', cap);
      const labelsBytes = gunzipIfNeeded(await fs.readFile(labelsPath), 'labels', cap);
      const idxError = (e: unknown) =>
        new DatasetError(400, 'IDX_INVALID', (e as Error).message.replace(/^IDX data: /, ''));
      let images: IdxTensor;
      let labels: IdxTensor;
      try {
        images = parseIdx(imagesBytes, 'images');
        labels = parseIdx(labelsBytes, 'labels');
      } catch (e) {
        throw idxError(e);
      }
      if (labels.dims.length === 1 && images.dims[0] !== labels.dims[0])
        throw new DatasetError(
          400,
          'IDX_COUNT_MISMATCH',
          `images file holds ${images.dims[0]} images but labels file holds ${labels.dims[0]} labels`,
        );
      const [h, w] = images.dims.length === 3 ? images.dims.slice(1) : images.dims.slice(-2);
      if (h * w > this.config.maxPixels)
        throw new DatasetError(
          413,
          'DATASET_IMAGE_TOO_LARGE',
          `images: ${images.dims.join('×')} exceeds the cap of ${this.config.maxPixels} pixels per image (DATASET_MAX_PIXELS)`,
        );
      let ds: ImageDataset;
      try {
        ds = idxPairToDataset(images, labels, 'upload', classNames);
      } catch (e) {
        const m = (e as Error).message.replace(/^dataset upload: /, '').replace(/^upload: /, '');
        if (classNames && /outside \[0, /.test(m))
          throw new DatasetError(
            400,
            'IDX_COUNT_MISMATCH',
            `${classNames.length} class names given but the labels need more: ${m}`,
          );
        throw new DatasetError(400, 'IDX_INVALID', m);
      }
      const counts = classCounts(ds);
      const empty = ds.classes.filter((_, i) => counts[i] === 0);
      if (empty.length)
        throw new DatasetError(
          400,
          'DATASET_EMPTY_CLASS',
          `no images with label ${listSome(empty)} (classes: ${listSome(ds.classes)})`,
        );
      if (ds.classes.length < 2)
        throw new DatasetError(
          400,
          'DATASET_TOO_FEW_CLASSES',
          `every label is ${ds.classes[0]}; a classifier needs at least 2 classes`,
        );
      await fs.writeFile(path.join(tmp, 'images.idx'), imagesBytes);
      await fs.writeFile(path.join(tmp, 'labels.idx'), labelsBytes);
      return {
        format: 'idx' as const,
        classes: ds.classes,
        counts,
        shapes: [ds.shape.join('x')],
      };
    });
  }

  /**
   * Shared create path: `build` fills a fresh temp dir and returns what it found; then the info is
   * written and the temp dir renamed to DATA_DIR/<id> (atomic on one filesystem). On any error the
   * temp dir is removed.
   */
  private async create(
    name: string | undefined,
    build: (
      tmp: string,
    ) => Promise<{ format: DatasetFormat; classes: string[]; counts: number[]; shapes: string[] }>,
  ): Promise<DatasetInfo> {
    if (name !== undefined && !/^[\w.\- ]{1,100}$/.test(name))
      throw new DatasetError(
        400,
        'VALIDATION_FAILED',
        'name: 1-100 letters, digits, spaces, ".", "-" or "_"',
      );
    const id = `ds_${randomBytes(6).toString('hex')}`;
    const tmp = path.join(this.config.dataDir, withOwner(`.tmp-${id}`));
    try {
      await fs.mkdir(tmp, { recursive: true });
      const r = await build(tmp);
      const info: DatasetInfo = {
        id,
        name: name ?? id,
        format: r.format,
        classes: r.classes,
        counts: r.counts,
        total: r.counts.reduce((a, b) => a + b, 0),
        shape: r.shapes.length === 1 ? r.shapes[0].split('x').map(Number) : null,
        ...(r.shapes.length > 1 ? { shapes: r.shapes.slice(0, 10) } : {}),
        createdAt: new Date().toISOString(),
      };
      await fs.writeFile(path.join(tmp, 'dataset.json'), JSON.stringify(info, null, 2));
      await fs.rename(tmp, path.join(this.config.dataDir, id));
      this.logger.log(
        `dataset ${id} (${info.format}): ${info.total} images, ${info.classes.length} classes`,
      );
      return info;
    } catch (e) {
      if (isStorageFull(e)) throw storageFullError('the dataset');
      throw e;
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }

  /** Decodes every image fully (truncated data fails here); returns the distinct CxHxW shapes. */
  private async checkImages(files: { file: string; label: string }[]): Promise<string[]> {
    const bad: string[] = [];
    const tooLarge: string[] = [];
    const shapes = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const { file, label } = files[next++];
        try {
          // The header first (no pixel cap), so an oversized image is named as such (a 413),
          // not as sharp's "exceeds pixel limit" decode failure.
          const meta = await sharp(file, { limitInputPixels: false }).metadata();
          if (!meta.format || !SHARP_FORMATS.has(meta.format)) {
            bad.push(`${label} (format ${meta.format ?? 'unknown'})`);
            continue;
          }
          if ((meta.width ?? 0) * (meta.height ?? 0) > this.config.maxPixels) {
            tooLarge.push(`${label} (${meta.width}×${meta.height})`);
            continue;
          }
          const img = sharp(file, { limitInputPixels: this.config.maxPixels, failOn: 'error' });
          await img.raw().toBuffer();
          const c = (meta.channels ?? 0) - (meta.hasAlpha ? 1 : 0);
          shapes.add(`${c}x${meta.height}x${meta.width}`);
        } catch (e) {
          bad.push(`${label} (${(e as Error).message.split('\n')[0]})`);
        }
      }
    };
    await Promise.all(Array.from({ length: DECODE_CONCURRENCY }, worker));
    if (tooLarge.length)
      throw new DatasetError(
        413,
        'DATASET_IMAGE_TOO_LARGE',
        `${tooLarge.length} image(s) exceed the cap of ${this.config.maxPixels} pixels (DATASET_MAX_PIXELS): ${listSome(tooLarge.sort())}`,
      );
    if (bad.length)
      throw new DatasetError(
        400,
        'DATASET_INVALID_IMAGE',
        `${bad.length} file(s) are not readable PNG/JPEG/WebP images: ${listSome(bad.sort())}`,
      );
    return [...shapes].sort();
  }

  async list(): Promise<DatasetInfo[]> {
    const names = (await fs.readdir(this.config.dataDir).catch(() => [] as string[])).filter((n) =>
      ID_RE.test(n),
    );
    const out: DatasetInfo[] = [];
    for (const n of names) {
      const info = await this.readInfo(n);
      if (info) out.push(info);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<DatasetInfo> {
    const info = ID_RE.test(id) ? await this.readInfo(id) : null;
    if (!info) throw new DatasetError(404, 'DATASET_NOT_FOUND', `dataset ${id} not found`);
    return info;
  }

  /** The data-layer spec (src/prg/data parseDataSpec) naming a stored dataset's files. */
  async spec(id: string): Promise<string> {
    const loc = await this.locate(id);
    return loc.labelsPath ? `idx:${loc.imagesPath},${loc.labelsPath}` : `folder:${loc.imagesPath}`;
  }

  /** Where the trainer finds a dataset's files. */
  async locate(id: string): Promise<DatasetLocation> {
    const info = await this.get(id);
    const dir = path.join(this.config.dataDir, id);
    return info.format === 'idx'
      ? {
          info,
          dir,
          imagesPath: path.join(dir, 'images.idx'),
          labelsPath: path.join(dir, 'labels.idx'),
        }
      : { info, dir, imagesPath: path.join(dir, 'images') };
  }

  /** The first `perClass` images of each class as small PNGs (dashboard thumbnails). */
  async samples(id: string, perClass: number): Promise<ClassSamples[]> {
    return datasetSamples(await this.locate(id), perClass);
  }

  async delete(id: string): Promise<void> {
    await this.get(id);
    for (const check of this.usageChecks) {
      const why = await check(id);
      if (why) throw new DatasetError(409, 'DATASET_IN_USE', `dataset ${id} is in use: ${why}`);
    }
    // Rename first so readers never see a half-deleted dataset, then remove.
    const trash = path.join(
      this.config.dataDir,
      withOwner(`.trash-${id}-${randomBytes(3).toString('hex')}`),
    );
    try {
      await fs.rename(path.join(this.config.dataDir, id), trash);
    } catch {
      throw new DatasetError(404, 'DATASET_NOT_FOUND', `dataset ${id} not found`);
    }
    await fs.rm(trash, { recursive: true, force: true });
  }

  private async readInfo(id: string): Promise<DatasetInfo | null> {
    try {
      return JSON.parse(
        await fs.readFile(path.join(this.config.dataDir, id, 'dataset.json'), 'utf8'),
      ) as DatasetInfo;
    } catch {
      return null;
    }
  }
}
