/**
 * Dataset validation errors: an ApiError (rendered `{ statusCode, code, message }`) that the
 * dataset code can throw from plain functions, away from Nest.
 */
import { ApiError } from '../common/errors';

export type DatasetErrorCode =
  | 'UPLOAD_MISSING'
  | 'UPLOAD_TOO_LARGE'
  | 'UPLOAD_UNEXPECTED_FIELD'
  | 'ZIP_INVALID'
  | 'ZIP_TOO_MANY_ENTRIES'
  | 'ZIP_TOO_LARGE'
  | 'ZIP_RATIO'
  | 'ZIP_SIZE_MISMATCH'
  | 'ZIP_UNSAFE_PATH'
  | 'ZIP_SYMLINK'
  | 'ZIP_ENCRYPTED'
  | 'ZIP_DUPLICATE_ENTRY'
  | 'DATASET_LAYOUT'
  | 'DATASET_NON_IMAGE'
  | 'DATASET_INVALID_IMAGE'
  | 'DATASET_IMAGE_TOO_LARGE'
  | 'DATASET_TOO_FEW_CLASSES'
  | 'DATASET_EMPTY_CLASS'
  | 'IDX_INVALID'
  | 'IDX_COUNT_MISMATCH'
  | 'DATASET_NOT_FOUND'
  | 'DATASET_IN_USE'
  | 'VALIDATION_FAILED';

export class DatasetError extends ApiError {
  constructor(status: 400 | 404 | 409 | 413, code: DatasetErrorCode, message: string) {
    super(status, code, message);
  }
}

/** "a, b, c (and 7 more)" — error messages name offending paths without growing unbounded. */
export function listSome(items: string[], max = 10): string {
  const shown = items.slice(0, max).map((s) => JSON.stringify(s));
  return items.length > max
    ? `${shown.join(', ')} (and ${items.length - max} more)`
    : shown.join(', ');
}
