/**
 * A full disk (or quota) while writing: the client gets 507 STORAGE_FULL naming what could not be
 * stored, not a 500, and a job fails with a reason starting with the same code. Host paths stay out
 * of the message (error bodies never contain them).
 */
import { HttpStatus } from '@nestjs/common';
import { ApiError } from './errors';

const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** Whether `e` or an error in its cause chain is a filesystem "no space" / "quota" error. */
export function isStorageFull(e: unknown): boolean {
  for (let c = e, depth = 0; c && depth < 8; depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && FULL.has(code)) return true;
    c = (c as { cause?: unknown }).cause;
  }
  return false;
}

export const STORAGE_FULL = 'STORAGE_FULL';

/** The 507 answered when `what` (e.g. "the uploaded dataset") could not be written. */
export function storageFullError(what: string): ApiError {
  return new ApiError(
    HttpStatus.INSUFFICIENT_STORAGE,
    'STORAGE_FULL',
    `no space left on the server's storage volume while writing ${what}; nothing was kept (free space or enlarge the volume, then retry)`,
  );
}
