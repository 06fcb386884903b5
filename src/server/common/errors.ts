/**
 * One error shape for every route: `{ statusCode, code, message }`. Services throw ApiError with a
 * stable machine-readable code; the filter (http-exception.filter.ts) renders it for REST and
 * GraphQL alike.
 */
import { HttpException, HttpStatus } from '@nestjs/common';

export type ErrorCode =
  | 'BAD_REQUEST'
  | 'VALIDATION_FAILED'
  | 'INVALID_JSON'
  | 'NO_IMAGES'
  | 'TOO_MANY_IMAGES'
  | 'INVALID_IMAGE'
  | 'UNSUPPORTED_IMAGE_FORMAT'
  | 'IMAGE_TOO_LARGE'
  | 'PAYLOAD_TOO_LARGE'
  | 'MODEL_NOT_FOUND'
  | 'NO_MODELS'
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'RATE_LIMITED'
  | 'INFERENCE_FAILED'
  | 'INTERNAL'
  | (string & {});

export class ApiError extends HttpException {
  constructor(
    status: HttpStatus,
    readonly code: ErrorCode,
    message: string,
  ) {
    super({ statusCode: status, code, message }, status);
  }
}

export const badRequest = (code: ErrorCode, message: string) =>
  new ApiError(HttpStatus.BAD_REQUEST, code, message);
