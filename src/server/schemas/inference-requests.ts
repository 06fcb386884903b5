/**
 * Arguments of the inference operations: one class per shape, carrying the OpenAPI (REST body),
 * GraphQL (query arguments) and class-validator decorators, so the global ValidationPipe applies
 * the same limits with the same error codes on both. The same class serves JSON (numbers as
 * numbers, images as base64 strings) and multipart (every field a string, images as files):
 * numeric fields convert with @Type. Limits that depend on configuration (MAX_STEPS, MAX_IMAGES,
 * MAX_FRAMES) or on the model (t, pool) are checked by the ML boundary (src/server/ml).
 * A field with only @ApiPropertyOptional is REST-only.
 */
import { ArgsType, Field, Float, Int } from '@nestjs/graphql';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { ApiField } from '../common/api-field';
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
import { POOL_SPELLING } from '../../prg/heads/pool';
import { SOLVER_NAMES, SolverName } from '../../prg/manifest';

/** What every op that runs the ODE takes: steps, solver and the class label (src/prg/inference). */
@ArgsType()
export class SolverArgs {
  @ApiField(Int, {
    optional: true,
    description: 'ODE steps K (default: the manifest; samples: 20, from t = 1 to 0)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'steps must be an integer' })
  @Min(1, { message: 'steps must be at least 1' })
  steps?: number;

  @ApiField(String, {
    optional: true,
    description: `ODE solver: ${SOLVER_NAMES.join(', ')} (default: the manifest; samples: euler)`,
    openapi: { enum: SOLVER_NAMES },
  })
  @IsOptional()
  @IsIn(SOLVER_NAMES, { message: `solver must be one of ${SOLVER_NAMES.join(', ')}` })
  solver?: SolverName;

  @ApiField(Int, {
    optional: true,
    description:
      'Class label fed to a class-conditional velocity net (default: its null class, i.e. ' +
      "unconditional features and samples); the range is the model's " +
      'architecture.velocity.labels. A 400 INVALID_CLASS_LABEL on unconditional models.',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'classLabel must be an integer' })
  @Min(0, { message: 'classLabel must be at least 0' })
  classLabel?: number;
}

/** The ops that take images: the solver settings and the images (REST: multipart or JSON). */
@ArgsType()
export class SolveArgs extends SolverArgs {
  @ApiField([String], {
    optional: true,
    description:
      'base64 PNG/JPEG/WebP images (a data: URL prefix is allowed). REST multipart: send files in the repeatable field "images" instead.',
  })
  @IsOptional()
  @IsArray()
  @IsString({ each: true })
  images?: string[];
}

@ArgsType()
export class ClassifyArgs extends SolveArgs {
  @ApiField(String, {
    optional: true,
    description: 'Model id "name@version" or name (latest version); default model when absent',
  })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model?: string;

  @ApiField(Int, {
    optional: true,
    description: 'How many top classes to list per image (default 5, capped at the class count)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'topK must be an integer' })
  @Min(1, { message: 'topK must be at least 1' })
  topK?: number;
}

@ArgsType()
export class FeaturesArgs extends SolveArgs {
  @ApiField(Float, {
    optional: true,
    description: 'Trajectory time t in (0, 1] (default: the manifest tStar)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 't must be a number' })
  t?: number;

  // GraphQL takes n as an Int (omit for none); the transform makes both forms a string.
  @Field(() => Int, { nullable: true, description: 'average-pool to n×n; omit for none' })
  @ApiPropertyOptional({
    description: '"none" (whole x_t, default) or n: average-pool each channel to n×n',
    example: 'none',
  })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) =>
    value === undefined || value === null ? value : String(value),
  )
  @Matches(POOL_SPELLING, { message: 'pool must be "none" or a positive integer' })
  pool?: string;

  // REST only: GraphQL answers number lists.
  @ApiPropertyOptional({
    enum: ['json', 'base64'],
    description: 'json: arrays of numbers; base64: little-endian float32 per image',
  })
  @IsOptional()
  @IsIn(['json', 'base64'], { message: 'format must be json or base64' })
  format?: 'json' | 'base64';
}

/** GraphQL's features query names its model in the arguments; REST has it in the path. */
@ArgsType()
export class FeaturesQueryArgs extends FeaturesArgs {
  @Field(() => String, { description: 'Model id "name@version" or name (latest version)' })
  @IsString()
  @MaxLength(200)
  model!: string;
}

@ArgsType()
export class OodArgs extends SolveArgs {}

@ArgsType()
export class TrajectoryArgs extends SolveArgs {
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

/**
 * Generation (docs/generation.md): n images by the forward ODE from seeded noise at t = 1 to
 * t = 0. No images in; the caps (n ≤ MAX_IMAGES, steps ≤ MAX_STEPS) and the class label (only for
 * a class-conditional model) are checked by the ML boundary.
 */
@ArgsType()
export class SampleArgs extends SolverArgs {
  @ApiField(Int, {
    optional: true,
    description: 'Images to generate (default 16 or MAX_IMAGES if lower; at most MAX_IMAGES)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'n must be an integer' })
  @Min(1, { message: 'n must be at least 1' })
  n?: number;

  @ApiField(Int, {
    optional: true,
    description: 'Seed of the noise (default 0): same seed, same images',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'seed must be an integer' })
  @Min(0, { message: 'seed must be at least 0' })
  @Max(2 ** 31 - 1, { message: 'seed must be at most 2147483647' })
  seed?: number;

  // REST only: GraphQL answers JSON with base64 PNGs.
  @ApiPropertyOptional({
    enum: ['grid', 'images'],
    description:
      'grid: one PNG of all images (default); images: JSON with one base64 PNG per image',
  })
  @IsOptional()
  @IsIn(['grid', 'images'], { message: 'format must be grid or images' })
  format?: 'grid' | 'images';

  @ApiPropertyOptional({ description: 'Integer upscale of the grid (1-8, default 1)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'scale must be an integer' })
  @Min(1)
  @Max(8)
  scale?: number;
}

/** GraphQL's samples query names its model in the arguments; REST has it in the path. */
@ArgsType()
export class SampleQueryArgs extends SampleArgs {
  @Field(() => String, { description: 'Model id "name@version" or name (latest version)' })
  @IsString()
  @MaxLength(200)
  model!: string;
}
