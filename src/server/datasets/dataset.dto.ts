/** A stored dataset as /datasets reports it (its OpenAPI schema); DatasetInfo is this class. */
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { DatasetFormat } from './datasets.service';

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
