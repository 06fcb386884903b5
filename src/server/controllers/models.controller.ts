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
import { ImageRepository } from '../repositories/image.repository';

const ERRORS = { type: ErrorResponse, description: '{statusCode, code, message}' };

@ApiTags('models')
@Controller('models')
export class ModelsController {
  constructor(
    private readonly models: ModelsService,
    private readonly inference: InferenceService,
    private readonly images: ImageRepository,
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
  @ApiOkResponse(ERRORS)
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
  async features(
    @Param('id') id: string,
    @Body() dto: FeaturesDto,
    @UploadedFiles() files?: Express.Multer.File[],
  ) {
    const r = await this.inference.features(id, imageInputs(files, dto.images), dto);
    const base64 = dto.format === 'base64';
    return {
      model: r.model,
      t: r.t,
      shape: r.shape,
      format: base64 ? 'base64' : 'json',
      ...(base64 ? { dtype: 'float32' } : {}),
      vectors: r.vectors.map((v) =>
        base64
          ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
          : Array.from(v),
      ),
    };
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
    const r = await this.inference.trajectory(id, imageInputs(files, dto.images), dto);
    const shape = r.entry.manifest.input;
    if (dto.format === 'frames')
      return {
        model: r.model,
        t: r.t,
        frames: await Promise.all(
          r.frames.map(async (f) => (await this.images.encodePng(f, shape)).toString('base64')),
        ),
      };
    const png = await this.images.sprite(r.frames, shape, dto.scale ?? 1);
    res.setHeader('X-Model', r.model);
    res.setHeader('X-Trajectory-T', r.t.map((t) => t.toFixed(4)).join(','));
    return new StreamableFile(png, { type: 'image/png' });
  }
}
