/**
 * HTTP requests in flight, counted by the middleware in app.ts. The ML boundary reads it to tell
 * whether more work is on its way (dynamic batching); health drains it on shutdown.
 */
import { Injectable } from '@nestjs/common';

@Injectable()
export class InFlightRequests {
  private n = 0;
  private idleWaiters: (() => void)[] = [];

  get count(): number {
    return this.n;
  }

  started(): void {
    this.n++;
  }

  finished(): void {
    this.n--;
    if (this.n === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves true when nothing is in flight, false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.n === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }
}
