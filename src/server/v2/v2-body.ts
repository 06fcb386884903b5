/**
 * HTTP bodies of the binary tensor extension (Triton docs/protocol/extension_binary_data.md):
 * the JSON object, then the binary data of each tensor that has a `binary_data_size` parameter,
 * in the order of the tensors in the JSON. `Inference-Header-Content-Length` gives the JSON's
 * length whenever binary data follows; without it the whole body is JSON.
 */
import { badRequest } from '../common/errors';

export const HEADER_LENGTH = 'inference-header-content-length';

export interface SplitBody {
  json: unknown;
  /** The bytes after the JSON object (empty without the extension). */
  binary: Buffer;
}

export function splitBody(raw: Buffer, headerLength: string | string[] | undefined): SplitBody {
  const h = Array.isArray(headerLength) ? headerLength[0] : headerLength;
  let end = raw.length;
  if (h !== undefined) {
    end = /^\d+$/.test(h.trim()) ? Number(h) : NaN;
    if (!(end <= raw.length))
      throw badRequest(
        'INVALID_BINARY_DATA',
        `Inference-Header-Content-Length ${JSON.stringify(h)} is not a length within the ${raw.length}-byte body`,
      );
  }
  const text = raw.subarray(0, end).toString('utf8');
  if (text.trim() === '')
    throw badRequest('INVALID_JSON', 'request body is empty; send an inference request object');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw badRequest('INVALID_JSON', `request body is not valid JSON: ${(e as Error).message}`);
  }
  return { json, binary: raw.subarray(end) };
}

/**
 * The binary data of each tensor in order: `sizes[i]` bytes (undefined: that tensor has JSON
 * data). Every byte after the JSON must belong to a tensor.
 */
export function sliceBinary(binary: Buffer, sizes: (number | undefined)[]): (Buffer | undefined)[] {
  let o = 0;
  const out = sizes.map((n) => {
    if (n === undefined) return undefined;
    const part = binary.subarray(o, o + n);
    o += n;
    return part;
  });
  if (o !== binary.length)
    throw badRequest(
      'INVALID_BINARY_DATA',
      `binary_data_size of the inputs adds up to ${o} bytes, the body has ${binary.length} after the JSON`,
    );
  return out;
}

/** The JSON object followed by the binary parts, and the header length to send with it. */
export function joinBody(json: unknown, parts: Buffer[]): { body: Buffer; headerLength: number } {
  const head = Buffer.from(JSON.stringify(json), 'utf8');
  return { body: Buffer.concat([head, ...parts]), headerLength: head.length };
}
