/**
 * Errors under /v2 in the Open Inference Protocol's shape: `{"error": "<message>"}` with the
 * HTTP status of our error (400 bad request, 404 unknown model or route, 413, 429, 500, 503), plus
 * `code`, the same stable code as everywhere else in this server (README error table). Clients
 * of the protocol read `error`; extra fields are allowed by it.
 */
import type { ErrorBody } from '../common/http-exception.filter';

export const V2_PREFIX = '/v2';

export function v2ErrorBody(e: ErrorBody): { error: string; code: string } {
  return { error: e.message, code: e.code };
}
