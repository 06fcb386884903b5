import {
  Body,
  Controller,
  HttpCode,
  Post,
  UploadedFiles,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConsumes,
  ApiOkResponse,
  ApiTags,
} from '@nestjs/swagger';
import { ImageUploadInterceptor } from '../common/image-upload.interceptor';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { imageInputs } from '../ml/image-input';
import { MlService } from '../ml/ml.service';
import { ClassifyArgs } from '../schemas/inference-requests';
import { ErrorResponse } from '../schemas/error.schema';
import { ClassifyResponse } from '../schemas/inference-responses';

@ApiTags('inference')
@Controller('classify')
export class ClassifyController {
  constructor(private readonly ml: MlService) {}

  @Post()
  @HttpCode(200)
  @UseGuards(RateLimitGuard)
  @UseInterceptors(ImageUploadInterceptor)
  @ApiConsumes('application/json', 'multipart/form-data')
  @ApiBody({ type: ClassifyArgs })
  @ApiOkResponse({ type: ClassifyResponse })
  @ApiBadRequestResponse({ type: ErrorResponse })
  classify(
    @Body() args: ClassifyArgs,
    @UploadedFiles() files?: Express.Multer.File[],
  ): Promise<ClassifyResponse> {
    return this.ml.classify(args, imageInputs(files, args.images));
  }
}
