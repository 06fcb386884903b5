/**
 * graphql-ws subscriptions carry credentials in their connection params (browsers cannot set
 * headers on a WebSocket). The GraphQL context already turns an `x-api-key` param into that
 * header; this wrapper does the same for `Authorization` (e.g. `{"Authorization": "Bearer <key>"}`),
 * so ApiKeyGuard and RateLimitGuard read it like the HTTP header (request.ts).
 */
import type { Request } from 'express';

interface ContextInput {
  req?: unknown;
  connectionParams?: Readonly<Record<string, unknown>>;
}

export function withConnectionAuthorization<C extends ContextInput>(
  context: (c: C) => { req: Request },
): (c: C) => { req: Request } {
  return (c) => {
    const ctx = context(c);
    const auth = c.connectionParams?.Authorization ?? c.connectionParams?.authorization;
    if (c.req || typeof auth !== 'string') return ctx;
    const req = { ...ctx.req, headers: { ...ctx.req.headers, authorization: auth } };
    return { req: req as Request };
  };
}
