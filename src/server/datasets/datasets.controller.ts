import {
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Post,
  Query,
  Req,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConflictResponse,
  ApiConsumes,
  ApiCreatedResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiSecurity,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { ErrorResponse } from '../schemas/error.schema';
import { DatasetResponse, DatasetSamplesQuery, DatasetSamplesResponse } from './dataset.dto';
import type { Request } from 'express';
import { ApiKeyGuard } from '../common/api-key.guard';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { DatasetInfo, DatasetsService } from './datasets.service';
import { DatasetUploadInterceptor, UploadedFiles } from './upload.interceptor';

/** Every route needs an API key when PRG_API_KEYS is set (uploads are state and disk). */
const ERRORS = { type: ErrorResponse, description: '{statusCode, code, message}' };

@ApiTags('datasets')
@ApiSecurity('api-key')
@ApiUnauthorizedResponse(ERRORS)
@Controller('datasets')
@UseGuards(ApiKeyGuard)
export class DatasetsController {
  constructor(private readonly datasets: DatasetsService) {}

  @Post()
  @UseGuards(RateLimitGuard)
  @UseInterceptors(DatasetUploadInterceptor)
  @ApiOperation({
    summary:
      'Upload a labelled dataset: a zip in ImageFolder layout (field `file`) or an IDX pair (fields `images`, `labels`)',
  })
  @ApiConsumes('multipart/form-data')
  @ApiBody({
    schema: {
      type: 'object',
      properties: {
        file: { type: 'string', format: 'binary' },
        images: { type: 'string', format: 'binary' },
        labels: { type: 'string', format: 'binary' },
        name: { type: 'string' },
        classes: { type: 'string', description: 'IDX only: comma-separated class names' },
      },
    },
  })
  @ApiCreatedResponse({ type: DatasetResponse })
  @ApiBadRequestResponse({
    ...ERRORS,
    description: 'zip bomb, unsafe entry, symlink, non-image or corrupt file, layout, classes, IDX',
  })
  @ApiPayloadTooLargeResponse(ERRORS)
  create(@Req() req: Request): Promise<DatasetInfo> {
    return this.datasets.createFromUpload(
      (req.files ?? {}) as UploadedFiles,
      (req.body ?? {}) as Record<string, unknown>,
    );
  }

  @Get()
  @ApiOkResponse({ type: [DatasetResponse] })
  list(): Promise<DatasetInfo[]> {
    return this.datasets.list();
  }

  @Get(':id')
  @ApiOkResponse({ type: DatasetResponse })
  @ApiNotFoundResponse(ERRORS)
  get(@Param('id') id: string): Promise<DatasetInfo> {
    return this.datasets.get(id);
  }

  @Get(':id/samples')
  @ApiOperation({ summary: 'The first images of each class as small PNGs (thumbnails)' })
  @ApiOkResponse({ type: DatasetSamplesResponse })
  @ApiNotFoundResponse(ERRORS)
  async samples(
    @Param('id') id: string,
    @Query() q: DatasetSamplesQuery,
  ): Promise<DatasetSamplesResponse> {
    return { id, classes: await this.datasets.samples(id, q.perClass ?? 4) };
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiNotFoundResponse(ERRORS)
  @ApiConflictResponse({ ...ERRORS, description: 'a queued or running fine-tune reads it' })
  delete(@Param('id') id: string): Promise<void> {
    return this.datasets.delete(id);
  }
}
