import { Controller, Get, Header, HttpStatus, Res } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { MetricsService } from '../metrics/metrics.service';
import { HealthService } from './health.service';

@ApiTags('ops')
@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthService,
    private readonly metrics: MetricsService,
  ) {}

  @Get('health/live')
  @ApiOkResponse({ description: 'The process answers (from the start, before models are warm)' })
  live() {
    return { status: 'ok' };
  }

  @Get('health/ready')
  @ApiOkResponse({
    description: '200 when the default model is warm (and Redis answers, if configured); else 503',
  })
  async ready(@Res({ passthrough: true }) res: Response) {
    const r = await this.health.readiness();
    res.status(r.ready ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return { status: r.ready ? 'ok' : 'unavailable', checks: r.checks };
  }

  @Get('metrics')
  @ApiExcludeEndpoint()
  @Header('Cache-Control', 'no-store')
  async prometheus(@Res() res: Response) {
    const m = await this.metrics.render();
    res.setHeader('Content-Type', m.contentType);
    res.send(m.body);
  }
}
