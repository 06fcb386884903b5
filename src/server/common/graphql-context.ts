/**
 * The GraphQL context `{ req }` for both transports: HTTP requests as they are, and graphql-ws
 * subscriptions (no express request) as a request-like object built from the WebSocket upgrade
 * request, with an `x-api-key` from the connection params (browsers cannot set headers on a
 * WebSocket) taking precedence — so ApiKeyGuard and RateLimitGuard work on subscriptions too.
 */
import type { Request } from 'express';
import type { IncomingMessage } from 'node:http';

export interface GraphqlContextInput {
  req?: Request;
  connectionParams?: Readonly<Record<string, unknown>>;
  extra?: { request?: IncomingMessage };
}

export function graphqlContext(c: GraphqlContextInput): { req: Request } {
  if (c.req) return { req: c.req };
  const upgrade = c.extra?.request;
  const key = c.connectionParams?.['x-api-key'];
  const headers = {
    ...(upgrade?.headers ?? {}),
    ...(typeof key === 'string' ? { 'x-api-key': key } : {}),
  };
  const req = { headers, ip: upgrade?.socket?.remoteAddress, socket: upgrade?.socket };
  return { req: req as unknown as Request };
}
