import {
  Body,
  Controller,
  Get,
  HttpCode,
  MessageEvent,
  Param,
  Post,
  Req,
  Sse,
  UseGuards,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiSecurity,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { ErrorResponse } from '../schemas/error.schema';
import { CreateFineTuneInput, FineTuneJobResponse } from './fine-tune.dto';
import { map, Observable } from 'rxjs';
import { ApiKeyGuard } from '../common/api-key.guard';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { apiKeyOf } from '../common/request';
import { FineTuneJobView } from './fine-tune.types';
import { FineTunesService } from './fine-tunes.service';

const ERRORS = { type: ErrorResponse, description: '{statusCode, code, message}' };

@ApiTags('fine-tunes')
@ApiSecurity('api-key')
@ApiUnauthorizedResponse(ERRORS)
@Controller('fine-tunes')
@UseGuards(ApiKeyGuard)
export class FineTunesController {
  constructor(private readonly fineTunes: FineTunesService) {}

  @Post()
  @UseGuards(RateLimitGuard)
  @ApiOperation({ summary: 'Queue a fine-tune of a model on an uploaded dataset' })
  @ApiCreatedResponse({ type: FineTuneJobResponse })
  @ApiBadRequestResponse({
    ...ERRORS,
    description: 'INVALID_HYPERPARAMETERS, SHAPE_MISMATCH (without allowResize), CLASS_MISMATCH',
  })
  @ApiNotFoundResponse({ ...ERRORS, description: 'MODEL_NOT_FOUND, DATASET_NOT_FOUND' })
  @ApiTooManyRequestsResponse({
    ...ERRORS,
    description: 'TOO_MANY_JOBS (MAX_JOBS_PER_KEY queued or running), RATE_LIMITED',
  })
  create(@Body() body: CreateFineTuneInput, @Req() req: Request): Promise<FineTuneJobView> {
    return this.fineTunes.create(body, apiKeyOf(req));
  }

  @Get()
  @ApiOkResponse({ type: [FineTuneJobResponse], description: 'newest first' })
  list(): Promise<FineTuneJobView[]> {
    return this.fineTunes.list();
  }

  @Get(':id')
  @ApiOkResponse({ type: FineTuneJobResponse })
  @ApiNotFoundResponse(ERRORS)
  get(@Param('id') id: string): Promise<FineTuneJobView> {
    return this.fineTunes.get(id);
  }

  @Sse(':id/events')
  @ApiOperation({
    summary:
      'Server-sent events: `snapshot` (the job now), then `status` and `progress` (per step/epoch) until it ends',
  })
  @ApiProduces('text/event-stream')
  @ApiNotFoundResponse(ERRORS)
  async events(@Param('id') id: string): Promise<Observable<MessageEvent>> {
    return (await this.fineTunes.events(id)).pipe(
      map((m) => ({ type: m.type, data: m.data as object })),
    );
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel: a queued job is dropped, a running one stops within one step' })
  @ApiOkResponse({ type: FineTuneJobResponse })
  @ApiNotFoundResponse(ERRORS)
  @ApiConflictResponse({ ...ERRORS, description: 'FINE_TUNE_FINISHED' })
  cancel(@Param('id') id: string): Promise<FineTuneJobView> {
    return this.fineTunes.cancel(id);
  }
}
