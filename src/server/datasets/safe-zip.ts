/**
 * Reading untrusted zip uploads with yauzl, refusing anything that could escape the target
 * directory or exhaust the disk:
 * - entry names: absolute paths, drive letters, `..` segments, backslashes, control characters;
 * - symlinks (unix mode bits in the external attributes), encrypted entries;
 * - zip bombs: entry count cap, total declared uncompressed size cap, compression ratio cap (per
 *   entry and per archive) — and, because headers can lie, the bytes actually produced while
 *   inflating are counted and compared with both the entry's declared size and the total cap.
 * The central directory is read (and every entry checked) before a single byte is inflated.
 */
import { createWriteStream, promises as fs } from 'node:fs';
import { Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as yauzl from 'yauzl';
import { DatasetError } from './dataset-errors';

export interface ZipLimits {
  maxEntries: number;
  maxUncompressedBytes: number;
  maxCompressionRatio: number;
}

export interface ZipItem {
  /** Validated relative name, `/`-separated; folders end with `/`. */
  name: string;
  isDirectory: boolean;
  entry: yauzl.Entry;
}

/** The ratio cap applies to entries at least this large: tiny files can compress well harmlessly. */
const RATIO_MIN_BYTES = 64 * 1024;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** Why `name` is unsafe as a relative path, or null. */
export function unsafeEntryName(name: string): string | null {
  if (name.length === 0) return 'empty name';
  if (name.includes('\\')) return 'backslash in the name (only "/" separates folders)';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(name)) return 'control character in the name';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'absolute path';
  const parts = name.replace(/\/$/, '').split('/');
  if (parts.includes('..')) return 'path traversal ("..")';
  if (parts.some((p) => p === '' || p === '.')) return 'empty or "." path segment';
  return null;
}

export class SafeZip {
  private constructor(
    private readonly zip: yauzl.ZipFile,
    readonly items: ZipItem[],
    private readonly limits: ZipLimits,
  ) {}

  private inflated = 0;

  /** Opens `file` and validates every entry of its central directory. Throws DatasetError. */
  static async open(file: string, limits: ZipLimits): Promise<SafeZip> {
    const { size } = await fs.stat(file);
    let zip: yauzl.ZipFile;
    try {
      zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
        // decodeStrings false: names are decoded and checked here, so errors name the entry.
        yauzl.open(
          file,
          // validateEntrySizes off: extract() counts the inflated bytes itself (with a clearer error).
          { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: false },
          (err, z) => (err ? reject(err) : resolve(z)),
        ),
      );
    } catch (e) {
      throw new DatasetError(
        400,
        'ZIP_INVALID',
        `not a readable zip file: ${(e as Error).message}`,
      );
    }
    try {
      if (zip.entryCount > limits.maxEntries)
        throw new DatasetError(
          400,
          'ZIP_TOO_MANY_ENTRIES',
          `zip has ${zip.entryCount} entries; the cap is ${limits.maxEntries} (DATASET_MAX_ENTRIES)`,
        );
      const entries = await readAll(zip);
      const items: ZipItem[] = [];
      let declared = 0;
      for (const entry of entries) {
        const raw = entry.fileName as unknown as Buffer;
        const name = yauzl.getFileNameLowLevel(
          entry.generalPurposeBitFlag,
          raw,
          entry.extraFields,
          true,
        );
        const why = unsafeEntryName(name);
        if (why)
          throw new DatasetError(
            400,
            'ZIP_UNSAFE_PATH',
            `zip entry ${JSON.stringify(name)}: ${why}`,
          );
        const mode = (entry.externalFileAttributes >>> 16) & S_IFMT;
        if (mode === S_IFLNK)
          throw new DatasetError(
            400,
            'ZIP_SYMLINK',
            `zip entry ${JSON.stringify(name)} is a symbolic link; links are not allowed`,
          );
        if (entry.isEncrypted())
          throw new DatasetError(
            400,
            'ZIP_ENCRYPTED',
            `zip entry ${JSON.stringify(name)} is encrypted`,
          );
        const isDirectory = name.endsWith('/');
        if (!isDirectory && entry.compressionMethod !== 0 && entry.compressionMethod !== 8)
          throw new DatasetError(
            400,
            'ZIP_INVALID',
            `zip entry ${JSON.stringify(name)}: unsupported compression method ${entry.compressionMethod} (stored or deflate only)`,
          );
        declared += entry.uncompressedSize;
        if (declared > limits.maxUncompressedBytes)
          throw new DatasetError(
            413,
            'ZIP_TOO_LARGE',
            `zip declares more than ${limits.maxUncompressedBytes} uncompressed bytes (DATASET_MAX_UNCOMPRESSED_BYTES)`,
          );
        items.push({ name, isDirectory, entry });
      }
      // Ratios after the total, so an archive over the total cap is reported as such.
      for (const { name, entry } of items)
        if (
          entry.uncompressedSize >= RATIO_MIN_BYTES &&
          entry.uncompressedSize / Math.max(1, entry.compressedSize) > limits.maxCompressionRatio
        )
          throw new DatasetError(
            400,
            'ZIP_RATIO',
            `zip entry ${JSON.stringify(name)} expands ${Math.round(entry.uncompressedSize / Math.max(1, entry.compressedSize))}×; the cap is ${limits.maxCompressionRatio}× (DATASET_MAX_RATIO)`,
          );
      if (declared >= RATIO_MIN_BYTES && declared / Math.max(1, size) > limits.maxCompressionRatio)
        throw new DatasetError(
          400,
          'ZIP_RATIO',
          `zip expands ${Math.round(declared / size)}× overall; the cap is ${limits.maxCompressionRatio}× (DATASET_MAX_RATIO)`,
        );
      return new SafeZip(zip, items, limits);
    } catch (e) {
      zip.close();
      if (e instanceof DatasetError) throw e;
      throw new DatasetError(
        400,
        'ZIP_INVALID',
        `not a readable zip file: ${(e as Error).message}`,
      );
    }
  }

  /**
   * Inflates one file entry to `dest` (created exclusively: a duplicate name fails), counting the
   * bytes produced against the entry's declared size and the archive's total cap.
   */
  async extract(item: ZipItem, dest: string): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await new Promise((resolve, reject) =>
        this.zip.openReadStream(item.entry, (err, s) => (err ? reject(err) : resolve(s))),
      );
    } catch (e) {
      throw new DatasetError(
        400,
        'ZIP_INVALID',
        `zip entry ${JSON.stringify(item.name)}: ${(e as Error).message}`,
      );
    }
    const declared = item.entry.uncompressedSize;
    let produced = 0;
    const counter = new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) => {
        produced += chunk.length;
        this.inflated += chunk.length;
        if (produced > declared)
          return cb(
            new DatasetError(
              400,
              'ZIP_SIZE_MISMATCH',
              `zip entry ${JSON.stringify(item.name)} inflates to more than its declared ${declared} bytes (corrupt or a zip bomb)`,
            ),
          );
        if (this.inflated > this.limits.maxUncompressedBytes)
          return cb(
            new DatasetError(
              413,
              'ZIP_TOO_LARGE',
              `zip inflates to more than ${this.limits.maxUncompressedBytes} bytes (DATASET_MAX_UNCOMPRESSED_BYTES)`,
            ),
          );
        cb(null, chunk);
      },
    });
    try {
      await pipeline(stream, counter, createWriteStream(dest, { flags: 'wx' }));
    } catch (e) {
      if (e instanceof DatasetError) throw e;
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EEXIST')
        throw new DatasetError(
          400,
          'ZIP_DUPLICATE_ENTRY',
          `zip entry ${JSON.stringify(item.name)} appears twice`,
        );
      // Writing failed on our side (disk full, I/O error): the zip is not at fault. A full disk
      // becomes 507 STORAGE_FULL in DatasetsService.create, anything else a 500.
      if (err.syscall !== undefined) throw e;
      throw new DatasetError(
        400,
        'ZIP_INVALID',
        `zip entry ${JSON.stringify(item.name)}: ${err.message}`,
      );
    }
  }

  close(): void {
    this.zip.close();
  }
}

function readAll(zip: yauzl.ZipFile): Promise<yauzl.Entry[]> {
  return new Promise((resolve, reject) => {
    const out: yauzl.Entry[] = [];
    zip.on('entry', (e: yauzl.Entry) => {
      out.push(e);
      zip.readEntry();
    });
    zip.once('end', () => resolve(out));
    zip.once('error', reject);
    zip.readEntry();
  });
}
