/**
 * multer, configured once: multipart requests carry images in the repeatable file field `images`,
 * kept in memory (no temp files to clean up), each at most MAX_UPLOAD_BYTES, at most MAX_IMAGES.
 * Non-multipart requests pass through (their images come as base64 in the JSON body).
 */
import {
  CallHandler,
  ExecutionContext,
  HttpStatus,
  Inject,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import type { Request, RequestHandler, Response } from 'express';
import multer from 'multer';
import { Observable } from 'rxjs';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { ApiError, badRequest } from './errors';

export const IMAGE_FIELD = 'images';
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

@Injectable()
export class ImageUploadInterceptor implements NestInterceptor {
  private readonly upload: RequestHandler;

  constructor(@Inject(SERVER_CONFIG) private readonly config: ServerConfig) {
    this.upload = multer({
      storage: multer.memoryStorage(),
      limits: {
        fileSize: config.maxUploadBytes,
        files: config.maxImages,
        fields: 32,
        fieldSize: 64 * 1024,
        parts: config.maxImages + 32,
      },
    }).array(IMAGE_FIELD, config.maxImages);
  }

  async intercept(ctx: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const req = ctx.switchToHttp().getRequest<Request>();
    const res = ctx.switchToHttp().getResponse<Response>();
    if (!req.is('multipart/form-data')) return next.handle();
    const len = Number(req.headers['content-length'] ?? 0);
    if (len > this.config.maxUploadBytes)
      throw new ApiError(
        HttpStatus.PAYLOAD_TOO_LARGE,
        'PAYLOAD_TOO_LARGE',
        `request body of ${len} bytes exceeds the cap of ${this.config.maxUploadBytes} bytes (MAX_UPLOAD_BYTES)`,
      );
    await new Promise<void>((resolve, reject) =>
      this.upload(req, res, (err?: unknown) => (err ? reject(this.toApiError(err)) : resolve())),
    );
    // multer nests "a[b]" field names into objects; class-transformer then drops these keys
    // silently, so the ValidationPipe's unknown-field check never sees them.
    for (const key of Object.keys((req.body ?? {}) as object))
      if (PROTOTYPE_KEYS.has(key))
        throw badRequest('VALIDATION_FAILED', `field "${key}" is not allowed`);
    return next.handle();
  }

  private toApiError(err: unknown): ApiError {
    if (err instanceof multer.MulterError) {
      switch (err.code) {
        case 'LIMIT_FILE_SIZE':
          return new ApiError(
            HttpStatus.PAYLOAD_TOO_LARGE,
            'PAYLOAD_TOO_LARGE',
            `an image file exceeds ${this.config.maxUploadBytes} bytes (MAX_UPLOAD_BYTES)`,
          );
        case 'LIMIT_FILE_COUNT':
          return badRequest(
            'TOO_MANY_IMAGES',
            `at most ${this.config.maxImages} images per request`,
          );
        case 'LIMIT_UNEXPECTED_FILE':
          return err.field === IMAGE_FIELD
            ? badRequest('TOO_MANY_IMAGES', `at most ${this.config.maxImages} images per request`)
            : badRequest(
                'BAD_REQUEST',
                `unexpected file field "${err.field}"; send images as "${IMAGE_FIELD}"`,
              );
        default:
          return badRequest('BAD_REQUEST', `multipart: ${err.message}`);
      }
    }
    return badRequest('BAD_REQUEST', `malformed multipart body: ${(err as Error).message}`);
  }
}
