/**
 * The decorators every image-taking inference route shares: 200 on success, rate limited, images
 * as multipart files (ImageUploadInterceptor) or base64 in a JSON body of `body`'s schema.
 */
import { applyDecorators, HttpCode, Type, UseGuards, UseInterceptors } from '@nestjs/common';
import { ApiBadRequestResponse, ApiBody, ApiConsumes } from '@nestjs/swagger';
import { ErrorResponse } from '../schemas/error.schema';
import { ImageUploadInterceptor } from './image-upload.interceptor';
import { RateLimitGuard } from './rate-limit.guard';

export function ImageRoute(body: Type<unknown>): MethodDecorator & ClassDecorator {
  return applyDecorators(
    HttpCode(200),
    UseGuards(RateLimitGuard),
    UseInterceptors(ImageUploadInterceptor),
    ApiConsumes('application/json', 'multipart/form-data'),
    ApiBody({ type: body }),
    ApiBadRequestResponse({ type: ErrorResponse, description: '{statusCode, code, message}' }),
  );
}
