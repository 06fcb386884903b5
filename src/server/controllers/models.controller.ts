import {
  Body,
  Controller,
  StreamableFile,
  Get,
  HttpCode,
  Param,
  Post,
  Res,
  UploadedFiles,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import {
  ApiBody,
  ApiConsumes,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiKeyGuard } from '../common/api-key.guard';
import { ImageUploadInterceptor } from '../common/image-upload.interceptor';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { FeaturesDto, OodDto, TrajectoryDto } from '../dtos/inference.dto';
import { ErrorResponse, FeaturesResponse, OodResponse } from '../dtos/responses.dto';
import { InferenceService, imageInputs } from '../services/inference.service';
import { ModelsService } from '../services/models.service';

const ERRORS = { type: ErrorResponse, description: '{statusCode, code, message}' };

@ApiTags('models')
@Controller('models')
export class ModelsController {
  constructor(
    private readonly models: ModelsService,
    private readonly inference: InferenceService,
  ) {}

  @Get()
  @ApiOkResponse({ description: 'Every servable model and the default model id' })
  list() {
    return this.models.list();
  }

  @Post('rescan')
  @HttpCode(200)
  @UseGuards(ApiKeyGuard)
  @ApiHeader({ name: 'x-api-key', required: false, description: 'needed when PRG_API_KEYS is set' })
  @ApiOkResponse({ description: 'Rescans MODELS_DIR now (it is also rescanned periodically)' })
  rescan() {
    return this.models.rescan();
  }

  @Get(':id')
  @ApiOkResponse({
    description:
      'Manifest, metrics and OOD thresholds of one model ("name@version" or name = latest)',
  })
  @ApiNotFoundResponse(ERRORS)
  get(@Param('id') id: string) {
    return this.models.get(id);
  }

  @Post(':id/features')
  @HttpCode(200)
  @UseGuards(RateLimitGuard)
  @UseInterceptors(ImageUploadInterceptor)
  @ApiConsumes('application/json', 'multipart/form-data')
  @ApiBody({ type: FeaturesDto })
  @ApiOkResponse({ type: FeaturesResponse })
  features(
    @Param('id') id: string,
    @Body() dto: FeaturesDto,
    @UploadedFiles() files?: Express.Multer.File[],
  ) {
    return this.inference.featuresView(id, imageInputs(files, dto.images), dto);
  }

  @Post(':id/ood')
  @HttpCode(200)
  @UseGuards(RateLimitGuard)
  @UseInterceptors(ImageUploadInterceptor)
  @ApiConsumes('application/json', 'multipart/form-data')
  @ApiBody({ type: OodDto })
  @ApiOkResponse({ type: OodResponse })
  ood(
    @Param('id') id: string,
    @Body() dto: OodDto,
    @UploadedFiles() files?: Express.Multer.File[],
  ) {
    return this.inference.ood(id, imageInputs(files, dto.images), dto);
  }

  @Post(':id/trajectory')
  @HttpCode(200)
  @UseGuards(RateLimitGuard)
  @UseInterceptors(ImageUploadInterceptor)
  @ApiConsumes('application/json', 'multipart/form-data')
  @ApiBody({ type: TrajectoryDto })
  @ApiProduces('image/png', 'application/json')
  @ApiOkResponse({
    description:
      'format=sprite: one PNG, frames left to right from t = 0 (image) to t = 1; format=frames: JSON {model, t[], frames[] (base64 PNG)}',
  })
  async trajectory(
    @Param('id') id: string,
    @Body() dto: TrajectoryDto,
    @Res({ passthrough: true }) res: Response,
    @UploadedFiles() files?: Express.Multer.File[],
  ) {
    const v = await this.inference.trajectoryView(id, imageInputs(files, dto.images), dto);
    if (v.kind === 'frames') return v.body;
    res.setHeader('X-Model', v.model);
    res.setHeader('X-Trajectory-T', v.t.map((t) => t.toFixed(4)).join(','));
    return new StreamableFile(v.png, { type: 'image/png' });
  }
}
