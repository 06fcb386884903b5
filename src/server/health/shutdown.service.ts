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
    const n = this.inFlight.count;
    if (n > 0) this.logger.log(`${signal ?? 'close'}: draining ${n} in-flight request(s)`);
    const drained = await this.health.drain(this.config.shutdownGraceMs);
    if (!drained)
      this.logger.warn(
        `${this.inFlight.count} request(s) still running after ${this.config.shutdownGraceMs} ms`,
      );
    server?.closeIdleConnections?.();
  }
}
