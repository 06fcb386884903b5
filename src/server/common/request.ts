import { ExecutionContext } from '@nestjs/common';
import { GqlExecutionContext } from '@nestjs/graphql';
import type { Request } from 'express';

/** The express request behind an HTTP or GraphQL call (GraphQL context is `{ req }`, app.module.ts). */
export function requestOf(ctx: ExecutionContext): Request {
  if (ctx.getType<string>() === 'graphql')
    return GqlExecutionContext.create(ctx).getContext<{ req: Request }>().req;
  return ctx.switchToHttp().getRequest<Request>();
}

const first = (h: string | string[] | undefined) => (Array.isArray(h) ? h[0] : h);

/** `Bearer <token>` (RFC 6750 §2.1; the scheme name is case-insensitive, RFC 9110 §11.1). */
const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * The API key a request carries: header `x-api-key`, else `Authorization: Bearer <key>` (what
 * most HTTP clients and API gateways send). Used for the key check and as the rate-limit client.
 */
export function apiKeyOf(req: Request): string | undefined {
  const key = first(req.headers['x-api-key']);
  if (key !== undefined) return key;
  const auth = first(req.headers.authorization);
  return auth === undefined ? undefined : BEARER.exec(auth)?.[1];
}
