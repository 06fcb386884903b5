/**
 * Renders every error as `{ statusCode, code, message }` (REST) or a GraphQL error carrying the same
 * `code` and `statusCode` in its extensions. Errors that are not HttpExceptions but carry an HTTP
 * status (body-parser's "entity.too.large", multer's limits) keep it; anything else is a 500 with a
 * generic message, logged with its stack.
 */
import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { GraphQLError } from 'graphql';
import type { Request, Response } from 'express';
import { InputError, InputErrorKind } from '../../prg/input-error';
import { ErrorCode } from './errors';
import { isStorageFull, storageFullError } from './storage-full';

export interface ErrorBody {
  statusCode: number;
  code: ErrorCode;
  message: string;
}

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE',
  429: 'RATE_LIMITED',
  503: 'SERVICE_UNAVAILABLE',
};

/** body-parser / raw-body error types → our codes */
const BODY_PARSER_CODES: Record<string, ErrorCode> = {
  'entity.too.large': 'PAYLOAD_TOO_LARGE',
  'entity.parse.failed': 'INVALID_JSON',
  'encoding.unsupported': 'UNSUPPORTED_MEDIA_TYPE',
  'request.aborted': 'BAD_REQUEST',
  'charset.unsupported': 'UNSUPPORTED_MEDIA_TYPE',
};

/** src/prg's input problems → HTTP statuses. */
const INPUT_ERROR_STATUS: Record<InputErrorKind, number> = {
  invalid: 400,
  unsupported: 415,
  'too-large': 413,
};

export function toErrorBody(exception: unknown): ErrorBody {
  if (exception instanceof InputError)
    return {
      statusCode: INPUT_ERROR_STATUS[exception.kind],
      code: exception.code,
      message: exception.message,
    };
  // The express adapter wraps body-parser errors in HttpExceptions; their cause keeps the type.
  if (exception instanceof HttpException && exception.cause instanceof Error) {
    const type = (exception.cause as { type?: unknown }).type;
    if (typeof type === 'string' && type in BODY_PARSER_CODES) return toErrorBody(exception.cause);
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const res = exception.getResponse();
    if (typeof res === 'object' && res !== null) {
      const r = res as { code?: string; message?: unknown };
      const message = Array.isArray(r.message)
        ? r.message.join('; ')
        : typeof r.message === 'string'
          ? r.message
          : exception.message;
      const code =
        r.code ?? (Array.isArray(r.message) ? 'VALIDATION_FAILED' : STATUS_CODES[status]);
      return { statusCode: status, code: code ?? `HTTP_${status}`, message };
    }
    return {
      statusCode: status,
      code: STATUS_CODES[status] ?? `HTTP_${status}`,
      message: String(res),
    };
  }
  const e = exception as {
    status?: unknown;
    statusCode?: unknown;
    type?: unknown;
    message?: unknown;
  };
  const status = typeof e?.status === 'number' ? e.status : e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const type = typeof e.type === 'string' ? e.type : '';
    let message = typeof e.message === 'string' ? e.message : 'bad request';
    if (type === 'entity.too.large') message = `request body too large: ${message}`;
    if (type === 'entity.parse.failed') message = `request body refused as JSON: ${message}`;
    return {
      statusCode: status,
      code: BODY_PARSER_CODES[type] ?? STATUS_CODES[status] ?? `HTTP_${status}`,
      message,
    };
  }
  if (isStorageFull(exception)) return toErrorBody(storageFullError("this request's data"));
  return { statusCode: 500, code: 'INTERNAL', message: 'internal server error' };
}

/** Another protocol's error object, made from ours (e.g. the Open Inference Protocol's under /v2). */
export type ErrorRenderer = (body: ErrorBody) => object;

@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  /** `renderers`: path prefix (e.g. "/v2") → how errors of requests under it are written. */
  constructor(private readonly renderers: Readonly<Record<string, ErrorRenderer>> = {}) {}

  catch(exception: unknown, host: ArgumentsHost): unknown {
    const body = toErrorBody(exception);
    if (body.statusCode >= 500)
      this.logger.error(exception instanceof Error ? exception.stack : String(exception));
    if (host.getType<string>() === 'graphql') {
      return new GraphQLError(body.message, {
        extensions: { code: body.code, statusCode: body.statusCode },
      });
    }
    const res = host.switchToHttp().getResponse<Response>();
    if (res.headersSent) return;
    const render = this.rendererFor(host.switchToHttp().getRequest<Request>().path);
    res.status(body.statusCode).json(render ? render(body) : body);
  }

  private rendererFor(path: string | undefined): ErrorRenderer | undefined {
    if (!path) return undefined;
    for (const [prefix, render] of Object.entries(this.renderers))
      if (path === prefix || path.startsWith(`${prefix}/`)) return render;
    return undefined;
  }
}
