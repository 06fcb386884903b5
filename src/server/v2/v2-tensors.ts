/**
 * Tensor data as the Open Inference Protocol carries it, checked against a declared shape:
 * JSON arrays (row-major, flattened or nested as the shape) and the binary tensor extension's
 * little-endian bytes (BYTES elements: a 4-byte little-endian length, then the bytes).
 */
import { badRequest } from '../common/errors';
import { V2TensorData } from './v2.schemas';

export const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * The elements of JSON tensor data in row-major order. Flattened data must have exactly
 * `elementCount(shape)` elements; nested data must follow the shape at every level.
 */
export function flattenJson(
  data: V2TensorData,
  shape: readonly number[],
  label: string,
): unknown[] {
  const n = elementCount(shape);
  if (!data.some(Array.isArray)) {
    if (data.length !== n)
      throw badRequest(
        'INVALID_TENSOR_DATA',
        `${label}: ${data.length} elements, shape [${shape.join(', ')}] needs ${n}`,
      );
    return data;
  }
  const out: unknown[] = [];
  const walk = (x: unknown, depth: number, at: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(x))
        throw badRequest('INVALID_TENSOR_DATA', `${label}${at}: nested deeper than the shape`);
      out.push(x);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[depth])
      throw badRequest(
        'INVALID_TENSOR_DATA',
        `${label}${at}: expected an array of ${shape[depth]} (shape [${shape.join(', ')}]), got ${
          Array.isArray(x) ? `${x.length} elements` : JSON.stringify(x)
        }`,
      );
    x.forEach((y, i) => walk(y, depth + 1, `${at}[${i}]`));
  };
  walk(data, 0, '');
  return out;
}

/** FP32 elements: finite JSON numbers. */
export function fp32FromJson(values: unknown[], label: string): Float32Array {
  const out = new Float32Array(values.length);
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw badRequest(
        'INVALID_TENSOR_DATA',
        `${label}: element ${i} is ${JSON.stringify(v)}, not an FP32 number`,
      );
    out[i] = v;
  });
  return out;
}

/** UINT8 elements: integers 0…255. */
export function uint8FromJson(values: unknown[], label: string): Uint8Array {
  const out = new Uint8Array(values.length);
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255)
      throw badRequest(
        'INVALID_TENSOR_DATA',
        `${label}: element ${i} is ${JSON.stringify(v)}, not a UINT8 integer 0…255`,
      );
    out[i] = v;
  });
  return out;
}

/** BYTES elements in JSON: strings (base64 for binary content such as image files). */
export function stringsFromJson(values: unknown[], label: string): string[] {
  return values.map((v, i) => {
    if (typeof v !== 'string')
      throw badRequest(
        'INVALID_TENSOR_DATA',
        `${label}: element ${i} is ${JSON.stringify(v)}, not a base64 string`,
      );
    return v;
  });
}

function checkSize(bytes: Buffer, want: number, label: string, what: string): void {
  if (bytes.length !== want)
    throw badRequest(
      'INVALID_BINARY_DATA',
      `${label}: ${bytes.length} bytes of binary data, ${what} needs ${want}`,
    );
}

export function fp32FromBinary(
  bytes: Buffer,
  shape: readonly number[],
  label: string,
): Float32Array {
  const n = elementCount(shape);
  checkSize(bytes, n * 4, label, `FP32 [${shape.join(', ')}]`);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = bytes.readFloatLE(i * 4);
  for (let i = 0; i < n; i++)
    if (!Number.isFinite(out[i]))
      throw badRequest('INVALID_TENSOR_DATA', `${label}: element ${i} is ${out[i]}`);
  return out;
}

export function uint8FromBinary(
  bytes: Buffer,
  shape: readonly number[],
  label: string,
): Uint8Array {
  checkSize(bytes, elementCount(shape), label, `UINT8 [${shape.join(', ')}]`);
  return new Uint8Array(bytes);
}

/** BYTES elements: each a 4-byte little-endian length and that many bytes, back to back. */
export function bytesFromBinary(bytes: Buffer, count: number, label: string): Buffer[] {
  const out: Buffer[] = [];
  let o = 0;
  while (o < bytes.length) {
    if (o + 4 > bytes.length)
      throw badRequest('INVALID_BINARY_DATA', `${label}: truncated length prefix at byte ${o}`);
    const len = bytes.readUInt32LE(o);
    if (o + 4 + len > bytes.length)
      throw badRequest(
        'INVALID_BINARY_DATA',
        `${label}: element ${out.length} declares ${len} bytes, only ${bytes.length - o - 4} left`,
      );
    out.push(bytes.subarray(o + 4, o + 4 + len));
    o += 4 + len;
  }
  if (out.length !== count)
    throw badRequest(
      'INVALID_BINARY_DATA',
      `${label}: ${out.length} BYTES elements in the binary data, shape needs ${count}`,
    );
  return out;
}

export function fp32ToBinary(values: Float32Array): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

/** BOOL as binary: one byte per element, 1 for true. */
export function boolToBinary(values: boolean[]): Buffer {
  return Buffer.from(values.map((v) => (v ? 1 : 0)));
}
