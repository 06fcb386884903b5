import {
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Post,
  Req,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { ApiKeyGuard } from '../common/api-key.guard';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { DatasetInfo, DatasetsService } from './datasets.service';
import { DatasetUploadInterceptor, UploadedFiles } from './upload.interceptor';

/** Every route needs an API key when PRG_API_KEYS is set (uploads are state and disk). */
@ApiTags('datasets')
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
  create(@Req() req: Request): Promise<DatasetInfo> {
    return this.datasets.createFromUpload(
      (req.files ?? {}) as UploadedFiles,
      (req.body ?? {}) as Record<string, unknown>,
    );
  }

  @Get()
  list(): Promise<DatasetInfo[]> {
    return this.datasets.list();
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<DatasetInfo> {
    return this.datasets.get(id);
  }

  @Delete(':id')
  @HttpCode(204)
  delete(@Param('id') id: string): Promise<void> {
    return this.datasets.delete(id);
  }
}
