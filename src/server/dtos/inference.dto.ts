/**
 * Request bodies of the inference routes. The same DTO serves JSON (numbers as numbers, images as
 * base64 strings) and multipart (every field a string, images as files): numeric fields convert
 * with @Type. Caps that depend on configuration (MAX_STEPS, MAX_IMAGES, MAX_FRAMES) are checked
 * in InferenceService.
 */
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import {
  IsArray,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';

export const SOLVER_NAMES = ['euler', 'midpoint', 'rk4', 'dopri5'] as const;

export class ImagesDto {
  @ApiPropertyOptional({
    type: [String],
    description:
      'JSON bodies: base64 PNG/JPEG/WebP images (a data: URL prefix is allowed). Multipart: send files in the repeatable field "images" instead.',
  })
  @IsOptional()
  @IsArray()
  @IsString({ each: true })
  images?: string[];
}

export class SolveDto extends ImagesDto {
  @ApiPropertyOptional({ description: 'ODE steps of the reverse process (default: the manifest)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'steps must be an integer' })
  @Min(1, { message: 'steps must be at least 1' })
  steps?: number;

  @ApiPropertyOptional({ enum: SOLVER_NAMES, description: 'ODE solver (default: the manifest)' })
  @IsOptional()
  @IsIn(SOLVER_NAMES, { message: `solver must be one of ${SOLVER_NAMES.join(', ')}` })
  solver?: (typeof SOLVER_NAMES)[number];
}

export class ClassifyDto extends SolveDto {
  @ApiPropertyOptional({
    description: 'Model id "name@version" or name (latest version); default model when absent',
  })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model?: string;

  @ApiPropertyOptional({
    description: 'How many top classes to list per image (default 5, capped at the class count)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'topK must be an integer' })
  @Min(1, { message: 'topK must be at least 1' })
  topK?: number;
}

export class FeaturesDto extends SolveDto {
  @ApiPropertyOptional({ description: 'Trajectory time t in (0, 1] (default: the manifest tStar)' })
  @IsOptional()
  @Type(() => Number)
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 't must be a number' })
  t?: number;

  @ApiPropertyOptional({
    description: '"none" (whole x_t, default) or n: average-pool each channel to n×n',
    example: 'none',
  })
  @IsOptional()
  @Transform(({ value }) => (value === undefined || value === null ? value : String(value)))
  @Matches(/^(none|[1-9]\d*)$/, { message: 'pool must be "none" or a positive integer' })
  pool?: string;

  @ApiPropertyOptional({
    enum: ['json', 'base64'],
    description: 'json: arrays of numbers; base64: little-endian float32 per image',
  })
  @IsOptional()
  @IsIn(['json', 'base64'], { message: 'format must be json or base64' })
  format?: 'json' | 'base64';
}

export class OodDto extends SolveDto {}

export class TrajectoryDto extends SolveDto {
  @ApiPropertyOptional({ description: 'Frames from t = 0 to t = 1 (default 8)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'frames must be an integer' })
  @Min(2, { message: 'frames must be at least 2' })
  frames?: number;

  @ApiPropertyOptional({
    enum: ['sprite', 'frames'],
    description: 'sprite: one PNG row (default); frames: JSON with one base64 PNG per frame',
  })
  @IsOptional()
  @IsIn(['sprite', 'frames'], { message: 'format must be sprite or frames' })
  format?: 'sprite' | 'frames';

  @ApiPropertyOptional({
    description: 'Integer upscale of each frame in the sprite (1-8, default 1)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'scale must be an integer' })
  @Min(1)
  @Max(8)
  scale?: number;
}
