import { Body, Controller, Post, UploadedFiles } from '@nestjs/common';
import { ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { ImageRoute } from '../common/image-route';
import { imageInputs } from '../ml/image-input';
import { MlService } from '../ml/ml.service';
import { ClassifyArgs } from '../schemas/inference-requests';
import { ClassifyResponse } from '../schemas/inference-responses';

@ApiTags('inference')
@Controller('classify')
export class ClassifyController {
  constructor(private readonly ml: MlService) {}

  @Post()
  @ImageRoute(ClassifyArgs)
  @ApiOkResponse({ type: ClassifyResponse })
  classify(
    @Body() args: ClassifyArgs,
    @UploadedFiles() files?: Express.Multer.File[],
  ): Promise<ClassifyResponse> {
    return this.ml.classify(args, imageInputs(files, args.images));
  }
}
