/**
 * Token bucket per client on the expensive routes (inference, uploads, jobs): RATE_LIMIT_BURST
 * tokens, refilled at RATE_LIMIT_RPS per second, one token per request. The client is its API key
 * when it sent one, else its IP. Per process: with N replicas the cluster-wide limit is N× this.
 * Use: `@UseGuards(RateLimitGuard)`.
 */
import { CanActivate, ExecutionContext, HttpStatus, Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { Response } from 'express';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { ApiError } from './errors';
import { apiKeyOf, requestOf } from './request';

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly rps: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token; returns 0 when granted, else the seconds until one is available. */
  take(client: string): number {
    const now = this.now();
    const b = this.buckets.get(client) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rps);
    b.at = now;
    this.buckets.set(client, b);
    if (this.buckets.size > 10_000) this.prune(now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / this.rps;
  }

  /** Drop full buckets (they are the default state) so the map stays bounded. */
  private prune(now: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + ((now - b.at) / 1000) * this.rps >= this.burst) this.buckets.delete(k);
  }
}

@Injectable()
export class RateLimitGuard implements CanActivate {
  private readonly buckets: TokenBuckets | null;

  constructor(@Inject(SERVER_CONFIG) config: ServerConfig) {
    this.buckets =
      config.rateLimitRps > 0 ? new TokenBuckets(config.rateLimitRps, config.rateLimitBurst) : null;
  }

  canActivate(ctx: ExecutionContext): boolean {
    if (!this.buckets) return true;
    const req = requestOf(ctx);
    const key = apiKeyOf(req);
    const client = key
      ? `key:${createHash('sha256').update(key).digest('hex').slice(0, 16)}`
      : `ip:${req.ip ?? req.socket?.remoteAddress ?? 'unknown'}`;
    const wait = this.buckets.take(client);
    if (wait === 0) return true;
    const res = req.res as Response | undefined;
    res?.setHeader('Retry-After', String(Math.ceil(wait)));
    throw new ApiError(
      HttpStatus.TOO_MANY_REQUESTS,
      'RATE_LIMITED',
      `rate limit exceeded (${this.buckets.rps}/s, burst ${this.buckets.burst}); retry in ${wait.toFixed(2)} s`,
    );
  }
}
