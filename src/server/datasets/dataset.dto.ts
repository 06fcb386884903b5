/**
 * Shapes of /datasets: a stored dataset as /datasets reports it (its OpenAPI schema; DatasetInfo
 * is this class), and the thumbnails route's query and answer.
 */
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import type { ClassSamples } from './dataset-samples';
import { MAX_SAMPLE_CLASSES } from './dataset-samples';

/** How a stored dataset keeps its images: class folders, or an IDX pair. */
export type DatasetFormat = 'imagefolder' | 'idx';

export class DatasetResponse {
  @ApiProperty({ example: 'ds_9243f37a7965' }) id!: string;
  @ApiProperty({ example: 'mnist-test' }) name!: string;
  @ApiProperty({ enum: ['imagefolder', 'idx'] }) format!: DatasetFormat;
  @ApiProperty({ type: [String], description: 'sorted folder names, or label names (IDX)' })
  classes!: string[];
  @ApiProperty({ type: [Number], description: 'images per class, aligned with classes' })
  counts!: number[];
  @ApiProperty() total!: number;
  @ApiProperty({
    type: [Number],
    nullable: true,
    example: [1, 28, 28],
    description: '[channels, height, width] of every image; null when they differ',
  })
  shape!: number[] | null;
  @ApiPropertyOptional({ type: [String], description: 'distinct CxHxW shapes when they differ' })
  shapes?: string[];
  @ApiProperty() createdAt!: string;
}

export class DatasetSamplesQuery {
  @ApiPropertyOptional({ minimum: 1, maximum: 16, default: 4, description: 'images per class' })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'perClass must be an integer' })
  @Min(1, { message: 'perClass must be at least 1' })
  @Max(16, { message: 'perClass must be at most 16' })
  perClass?: number;
}

export class ClassSamplesResponse implements ClassSamples {
  @ApiProperty() name!: string;
  @ApiProperty({ description: 'images of the class in the whole dataset' }) count!: number;
  @ApiProperty({
    type: [String],
    description: 'base64 PNGs, at most 64 px on a side: the first images of the class',
  })
  images!: string[];
}

export class DatasetSamplesResponse {
  @ApiProperty() id!: string;
  @ApiProperty({
    type: [ClassSamplesResponse],
    description: `aligned with the dataset's classes (the first ${MAX_SAMPLE_CLASSES} only)`,
  })
  classes!: ClassSamplesResponse[];
}
