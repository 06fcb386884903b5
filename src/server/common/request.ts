import { ExecutionContext } from '@nestjs/common';
import { GqlExecutionContext } from '@nestjs/graphql';
import type { Request } from 'express';

/** The express request behind an HTTP or GraphQL call (GraphQL context is `{ req }`, app.module.ts). */
export function requestOf(ctx: ExecutionContext): Request {
  if (ctx.getType<string>() === 'graphql')
    return GqlExecutionContext.create(ctx).getContext<{ req: Request }>().req;
  return ctx.switchToHttp().getRequest<Request>();
}

export function apiKeyOf(req: Request): string | undefined {
  const h = req.headers['x-api-key'];
  return Array.isArray(h) ? h[0] : h;
}
