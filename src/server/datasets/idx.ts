/**
 * IDX uploads may be gzip-compressed (as MNIST is distributed): decompress with a cap, so a gzip
 * bomb is a 413 (ZIP_TOO_LARGE, like a zip bomb). Parsing is the data layer's (src/prg/data/idx.ts).
 */
import { gunzipSync } from 'node:zlib';
import { DatasetError } from './dataset-errors';

export function gunzipIfNeeded(file: Buffer, label: string, maxBytes: number): Buffer {
  if (file.length < 2 || file[0] !== 0x1f || file[1] !== 0x8b) return file;
  try {
    return gunzipSync(file, { maxOutputLength: maxBytes });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_BUFFER_TOO_LARGE')
      throw new DatasetError(
        413,
        'ZIP_TOO_LARGE',
        `${label}: gzip data expands beyond ${maxBytes} bytes (DATASET_MAX_UNCOMPRESSED_BYTES)`,
      );
    throw new DatasetError(400, 'IDX_INVALID', `${label}: corrupt gzip data (${err.message})`);
  }
}
