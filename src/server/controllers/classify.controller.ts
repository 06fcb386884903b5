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
import { ClassifyDto } from '../dtos/inference.dto';
import { ClassifyResponse, ErrorResponse } from '../dtos/responses.dto';
import { InferenceService, imageInputs } from '../services/inference.service';

@ApiTags('inference')
@Controller('classify')
export class ClassifyController {
  constructor(private readonly inference: InferenceService) {}

  @Post()
  @HttpCode(200)
  @UseGuards(RateLimitGuard)
  @UseInterceptors(ImageUploadInterceptor)
  @ApiConsumes('application/json', 'multipart/form-data')
  @ApiBody({ type: ClassifyDto })
  @ApiOkResponse({ type: ClassifyResponse })
  @ApiBadRequestResponse({ type: ErrorResponse })
  classify(@Body() dto: ClassifyDto, @UploadedFiles() files?: Express.Multer.File[]) {
    return this.inference.classify(dto.model, imageInputs(files, dto.images), dto);
  }
}
