/**
 * Images as a request carries them: multipart files, base64 text in JSON and GraphQL, a tensor
 * already in the model's input space (CHW float32, x = pixel / 127.5 − 1), or raw CHW uint8
 * pixels at the model's size (the last two for protocols that send tensors, such as the Open
 * Inference Protocol).
 */
import { HttpStatus } from '@nestjs/common';
import { ApiError, badRequest } from '../common/errors';

export type ImageInput =
  | { bytes: Buffer; name?: string }
  | { base64: string; name?: string }
  | { tensor: Float32Array; name?: string }
  | { pixels: Uint8Array; name?: string };

/** The inputs that are encoded image files (decoded by the image codec). */
export type EncodedImageInput = Extract<ImageInput, { bytes: Buffer } | { base64: string }>;

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

/** The images of a request: multipart files, else the body's base64 list. */
export function imageInputs(
  files: Express.Multer.File[] | undefined,
  base64: string[] | undefined,
): ImageInput[] {
  if (files && files.length) return files.map((f) => ({ bytes: f.buffer, name: f.originalname }));
  return (base64 ?? []).map((b) => ({ base64: b }));
}

export function inputLabel(inp: ImageInput, i: number): string {
  return `images[${i}]${'name' in inp && inp.name ? ` (${inp.name})` : ''}`;
}

/** The encoded image bytes; base64 text is checked and capped at `maxBytes` (MAX_UPLOAD_BYTES). */
export function imageBytes(inp: EncodedImageInput, label: string, maxBytes: number): Buffer {
  if ('bytes' in inp) return inp.bytes;
  const s = inp.base64.replace(/^data:[^;,]*;base64,/, '');
  if (!BASE64.test(s)) throw badRequest('INVALID_IMAGE', `${label}: not base64 text`);
  const b = Buffer.from(s, 'base64');
  if (b.length > maxBytes)
    throw new ApiError(
      HttpStatus.PAYLOAD_TOO_LARGE,
      'PAYLOAD_TOO_LARGE',
      `${label}: ${b.length} bytes exceeds MAX_UPLOAD_BYTES`,
    );
  return b;
}
