/**
 * IDX files (the MNIST format, http://yann.lecun.com/exdb/mnist/): magic 0x0000 TT DD (TT = data
 * type, DD = number of dimensions), DD big-endian uint32 sizes, then the data. Only unsigned bytes
 * (TT = 0x08) are used by image datasets. Files may be gzip-compressed (as MNIST is distributed);
 * decompression is capped.
 */
import { gunzipSync } from 'node:zlib';
import { DatasetError } from './dataset-errors';

export interface IdxArray {
  dims: number[];
  /** The payload (a view past the header), row-major. */
  data: Uint8Array;
  /** The whole (decompressed) file. */
  bytes: Buffer;
}

export function parseIdx(file: Buffer, label: string, maxBytes: number): IdxArray {
  let buf = file;
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf, { maxOutputLength: maxBytes });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ERR_BUFFER_TOO_LARGE')
        throw new DatasetError(
          400,
          'IDX_INVALID',
          `${label}: gzip data expands beyond ${maxBytes} bytes (DATASET_MAX_UNCOMPRESSED_BYTES)`,
        );
      throw new DatasetError(400, 'IDX_INVALID', `${label}: corrupt gzip data (${err.message})`);
    }
  }
  if (buf.length < 4)
    throw new DatasetError(
      400,
      'IDX_INVALID',
      `${label}: ${buf.length} bytes, too short for an IDX header`,
    );
  if (buf[0] !== 0 || buf[1] !== 0)
    throw new DatasetError(
      400,
      'IDX_INVALID',
      `${label}: bad magic number 0x${buf.subarray(0, 4).toString('hex')} (an IDX file starts with two zero bytes)`,
    );
  if (buf[2] !== 0x08)
    throw new DatasetError(
      400,
      'IDX_INVALID',
      `${label}: data type 0x${buf[2].toString(16).padStart(2, '0')} is not supported (only unsigned byte, 0x08)`,
    );
  const nd = buf[3];
  if (nd < 1 || nd > 4)
    throw new DatasetError(400, 'IDX_INVALID', `${label}: ${nd} dimensions (expected 1 to 4)`);
  const headerBytes = 4 + 4 * nd;
  if (buf.length < headerBytes)
    throw new DatasetError(400, 'IDX_INVALID', `${label}: truncated header`);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  if (dims.some((d) => d === 0))
    throw new DatasetError(400, 'IDX_INVALID', `${label}: a dimension is 0 (${dims.join('×')})`);
  const expected = dims.reduce((a, b) => a * b, 1);
  const actual = buf.length - headerBytes;
  if (actual !== expected)
    throw new DatasetError(
      400,
      'IDX_INVALID',
      `${label}: header says ${dims.join('×')} = ${expected} data bytes, file has ${actual}`,
    );
  return {
    dims,
    data: new Uint8Array(buf.buffer, buf.byteOffset + headerBytes, actual),
    bytes: buf,
  };
}
