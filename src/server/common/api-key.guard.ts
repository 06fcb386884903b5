/**
 * When PRG_API_KEYS is set, a route or resolver under this guard needs one of the keys, in header
 * `x-api-key` or as `Authorization: Bearer <key>` (request.ts; compared in constant time either
 * way). Without keys configured it lets everything through.
 * Use: `@UseGuards(ApiKeyGuard)` on uploads, jobs and other state-changing routes.
 */
import { CanActivate, ExecutionContext, HttpStatus, Inject, Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { ApiError } from './errors';
import { apiKeyOf, requestOf } from './request';

const digest = (s: string) => createHash('sha256').update(s).digest();

@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: Buffer[];

  constructor(@Inject(SERVER_CONFIG) config: ServerConfig) {
    this.keys = config.apiKeys.map(digest);
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  /** True when `key` is one of the configured keys. */
  isValid(key: string | undefined): boolean {
    if (key === undefined) return false;
    const d = digest(key);
    let ok = false;
    for (const k of this.keys) ok = timingSafeEqual(k, d) || ok;
    return ok;
  }

  canActivate(ctx: ExecutionContext): boolean {
    if (!this.enabled) return true;
    const key = apiKeyOf(requestOf(ctx));
    if (key === undefined)
      throw new ApiError(
        HttpStatus.UNAUTHORIZED,
        'UNAUTHORIZED',
        'missing API key: send header x-api-key or Authorization: Bearer <key>',
      );
    if (!this.isValid(key))
      throw new ApiError(HttpStatus.UNAUTHORIZED, 'UNAUTHORIZED', 'invalid API key');
    return true;
  }
}
