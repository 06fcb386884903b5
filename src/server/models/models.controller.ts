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
} from '@nestjs/common';
import {
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiKeyGuard } from '../common/api-key.guard';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { ImageRoute } from '../common/image-route';
import { imageInputs } from '../ml/image-input';
import { MlService } from '../ml/ml.service';
import { FeaturesArgs, OodArgs, SampleArgs, TrajectoryArgs } from '../schemas/inference-requests';
import { ErrorResponse } from '../schemas/error.schema';
import {
  FeaturesResponse,
  OodResponse,
  SamplesResponse,
  TrajectoryFramesResponse,
} from '../schemas/inference-responses';
import { ModelDetail, ModelList } from '../schemas/model.schema';

const ERRORS = { type: ErrorResponse, description: '{statusCode, code, message}' };

@ApiTags('models')
@Controller('models')
export class ModelsController {
  constructor(private readonly ml: MlService) {}

  @Get()
  @ApiOkResponse({ type: ModelList, description: 'Every servable model and the default model id' })
  list(): ModelList {
    return this.ml.models();
  }

  @Post('rescan')
  @HttpCode(200)
  @UseGuards(ApiKeyGuard)
  @ApiHeader({
    name: 'x-api-key',
    required: false,
    description: 'needed when PRG_API_KEYS is set (or send Authorization: Bearer <key>)',
  })
  @ApiOkResponse({
    type: ModelList,
    description: 'Rescans MODELS_DIR now (it is also rescanned periodically)',
  })
  rescan(): Promise<ModelList> {
    return this.ml.rescan();
  }

  @Get(':id')
  @ApiOkResponse({
    type: ModelDetail,
    description:
      'Manifest, metrics and OOD thresholds of one model ("name@version" or name = latest)',
  })
  @ApiNotFoundResponse(ERRORS)
  get(@Param('id') id: string): Promise<ModelDetail> {
    return this.ml.model(id);
  }

  @Post(':id/features')
  @ImageRoute(FeaturesArgs)
  @ApiOkResponse({ type: FeaturesResponse })
  features(
    @Param('id') id: string,
    @Body() args: FeaturesArgs,
    @UploadedFiles() files?: Express.Multer.File[],
  ): Promise<FeaturesResponse> {
    return this.ml.features(id, args, imageInputs(files, args.images));
  }

  @Post(':id/ood')
  @ImageRoute(OodArgs)
  @ApiOkResponse({ type: OodResponse })
  ood(
    @Param('id') id: string,
    @Body() args: OodArgs,
    @UploadedFiles() files?: Express.Multer.File[],
  ): Promise<OodResponse> {
    return this.ml.ood(id, args, imageInputs(files, args.images));
  }

  @Post(':id/trajectory')
  @ImageRoute(TrajectoryArgs)
  @ApiProduces('image/png', 'application/json')
  @ApiOkResponse({
    type: TrajectoryFramesResponse,
    description:
      'format=sprite: one PNG, frames left to right from t = 0 (image) to t = 1; format=frames: JSON {model, t[], frames[] (base64 PNG)}',
  })
  async trajectory(
    @Param('id') id: string,
    @Body() args: TrajectoryArgs,
    @Res({ passthrough: true }) res: Response,
    @UploadedFiles() files?: Express.Multer.File[],
  ): Promise<TrajectoryFramesResponse | StreamableFile> {
    const v = await this.ml.trajectory(id, args, imageInputs(files, args.images));
    if (v.kind === 'frames') return v.body;
    res.setHeader('X-Model', v.model);
    res.setHeader('X-Trajectory-T', v.t.map((t) => t.toFixed(4)).join(','));
    return new StreamableFile(v.png, { type: 'image/png' });
  }

  @Post(':id/samples')
  @HttpCode(200)
  @UseGuards(RateLimitGuard)
  @ApiProduces('image/png', 'application/json')
  @ApiOkResponse({
    type: SamplesResponse,
    description:
      'format=grid: one PNG of the n images (headers X-Model, X-Seed, X-Steps, X-Solver); format=images: JSON with one base64 PNG per image',
  })
  async samples(
    @Param('id') id: string,
    @Body() args: SampleArgs,
    @Res({ passthrough: true }) res: Response,
  ): Promise<SamplesResponse | StreamableFile> {
    const v = await this.ml.samples(id, args);
    if (v.kind === 'images') return v.body;
    res.setHeader('X-Model', v.body.model);
    res.setHeader('X-Seed', String(v.body.seed));
    res.setHeader('X-Steps', String(v.body.steps));
    res.setHeader('X-Solver', v.body.solver);
    return new StreamableFile(v.png, { type: 'image/png' });
  }
}
