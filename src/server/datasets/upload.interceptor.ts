/**
 * Multer for dataset uploads, configured once: disk storage in UPLOAD_TMP_DIR (a zip can be larger
 * than we want in memory), fields `file` (zip) or `images` + `labels` (IDX), size cap per file.
 * Multer's errors become 4xx ApiErrors, and every uploaded temp file is removed when the request
 * ends, whatever the outcome.
 */
import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor } from '@nestjs/common';
import type { Request, RequestHandler, Response } from 'express';
import multer from 'multer';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { Observable, finalize, from, switchMap } from 'rxjs';
import { ApiError } from '../common/errors';
import { withOwner } from '../common/stale-temp';
import { isStorageFull, storageFullError } from '../common/storage-full';
import { DatasetError } from './dataset-errors';
import { DatasetsConfig } from './datasets.config';
import { DATASETS_CONFIG } from './datasets.service';

export type UploadedFiles = Partial<Record<'file' | 'images' | 'labels', Express.Multer.File[]>>;

@Injectable()
export class DatasetUploadInterceptor implements NestInterceptor {
  private readonly upload: RequestHandler;

  constructor(@Inject(DATASETS_CONFIG) private readonly config: DatasetsConfig) {
    this.upload = multer({
      storage: multer.diskStorage({
        destination: config.uploadTmpDir,
        filename: (_req, _file, cb) =>
          cb(null, withOwner(`upload-${randomBytes(8).toString('hex')}`)),
      }),
      limits: { fileSize: config.maxUploadBytes, files: 2, fields: 8, fieldSize: 64 * 1024 },
    }).fields([
      { name: 'file', maxCount: 1 },
      { name: 'images', maxCount: 1 },
      { name: 'labels', maxCount: 1 },
    ]);
  }

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = ctx.switchToHttp().getRequest<Request>();
    const res = ctx.switchToHttp().getResponse<Response>();
    const cleanup = () => {
      const files = (req.files ?? {}) as UploadedFiles;
      for (const list of Object.values(files))
        for (const f of list ?? []) void fs.rm(f.path, { force: true });
    };
    const parsed = new Promise<void>((resolve, reject) =>
      this.upload(req, res, (err?: unknown) => (err ? reject(this.toApiError(err)) : resolve())),
    );
    return from(parsed.catch((e) => (cleanup(), Promise.reject(e)))).pipe(
      switchMap(() => next.handle()),
      finalize(cleanup),
    );
  }

  private toApiError(err: unknown): ApiError {
    if (isStorageFull(err)) return storageFullError('the uploaded file');
    if (err instanceof multer.MulterError) {
      switch (err.code) {
        case 'LIMIT_FILE_SIZE':
          return new DatasetError(
            413,
            'UPLOAD_TOO_LARGE',
            `file field "${err.field}" exceeds the upload cap of ${this.config.maxUploadBytes} bytes (DATASET_MAX_UPLOAD_BYTES)`,
          );
        case 'LIMIT_UNEXPECTED_FILE':
          return new DatasetError(
            400,
            'UPLOAD_UNEXPECTED_FIELD',
            `unexpected file field "${err.field}" (or sent twice): send a zip as "file", or IDX files as "images" and "labels"`,
          );
        default:
          return new DatasetError(
            400,
            'UPLOAD_UNEXPECTED_FIELD',
            `bad multipart upload: ${err.message}`,
          );
      }
    }
    return new DatasetError(
      400,
      'UPLOAD_MISSING',
      `malformed multipart body: ${(err as Error).message ?? String(err)}`,
    );
  }
}
