/**
 * Graceful shutdown (SIGTERM/SIGINT via enableShutdownHooks, or app.close()): readiness turns 503
 * while requests are still served for SHUTDOWN_DELAY_MS (load balancers see it and stop sending),
 * then the listening socket closes so no new connection is accepted, in-flight requests finish (up to
 * SHUTDOWN_GRACE_MS), idle keep-alive connections are closed; then Nest closes the server and the
 * ML boundary releases the models (onApplicationShutdown).
 */
import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server } from 'node:http';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { InFlightRequests } from '../common/in-flight';
import { HealthService } from './health.service';

/** How long, after the last in-flight request, open connections get to close by themselves. */
const LINGER_MS = 2000;

@Injectable()
export class ShutdownService implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Shutdown');

  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    private readonly health: HealthService,
    private readonly inFlight: InFlightRequests,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    this.health.startDraining();
    if (this.config.shutdownDelayMs > 0 && server?.listening) {
      this.logger.log(
        `${signal ?? 'close'}: readiness 503, serving ${this.config.shutdownDelayMs} ms more (SHUTDOWN_DELAY_MS)`,
      );
      await new Promise((r) => setTimeout(r, this.config.shutdownDelayMs));
    }
    if (server?.listening) server.close();
    const deadline = Date.now() + this.config.shutdownGraceMs;
    const n = this.inFlight.count;
    if (n > 0) this.logger.log(`${signal ?? 'close'}: draining ${n} in-flight request(s)`);
    const drained = await this.health.drain(this.config.shutdownGraceMs);
    if (!drained)
      this.logger.warn(
        `${this.inFlight.count} request(s) still running after ${this.config.shutdownGraceMs} ms`,
      );
    // A connection accepted just before the listener closed may hold a request not parsed yet
    // (not in flight, so "idle" to Node): closing it would reset a request the client already
    // sent. Every response now says Connection: close, so clients close their connections
    // themselves; wait for that (up to LINGER_MS), then close what is left.
    if (server) await this.connectionsClosed(server, Math.min(LINGER_MS, deadline - Date.now()));
    server?.closeIdleConnections?.();
  }

  private async connectionsClosed(server: Server, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    const count = () =>
      new Promise<number>((r) => server.getConnections((err, n) => r(err ? 0 : n)));
    while (Date.now() < end) {
      // A request arriving meanwhile finishes before anything is closed.
      if (this.inFlight.count > 0) await this.inFlight.idle(Math.max(0, end - Date.now()));
      else if ((await count()) === 0) return;
      else await new Promise((r) => setTimeout(r, 25));
    }
  }
}
