/** Response shapes, for the OpenAPI document (/docs). */
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class ErrorResponse {
  @ApiProperty({ example: 400 }) statusCode!: number;
  @ApiProperty({ example: 'INVALID_IMAGE' }) code!: string;
  @ApiProperty({ example: 'images[0]: not a readable image' }) message!: string;
}

export class LabelProbabilityDto {
  @ApiProperty() label!: string;
  @ApiProperty() probability!: number;
}

export class OodFlagDto {
  @ApiProperty({ description: 'name of the primary OOD score' }) name!: string;
  @ApiProperty() score!: number;
  @ApiProperty({
    description: 'true when the score is on the out-of-distribution side of the threshold',
  })
  flagged!: boolean;
}

export class ClassifyResultDto {
  @ApiProperty() label!: string;
  @ApiProperty() index!: number;
  @ApiProperty() probability!: number;
  @ApiProperty({ type: [LabelProbabilityDto] }) topK!: LabelProbabilityDto[];
  @ApiPropertyOptional({ type: OodFlagDto, nullable: true }) ood!: OodFlagDto | null;
}

export class ClassifyResponse {
  @ApiProperty({ example: 'prg-mnist@1.0.0' }) model!: string;
  @ApiProperty({ type: [ClassifyResultDto], description: 'one per image, in request order' })
  results!: ClassifyResultDto[];
}

export class FeaturesResponse {
  @ApiProperty() model!: string;
  @ApiProperty() t!: number;
  @ApiProperty({ type: [Number], description: '[images, ...per-image feature shape]' })
  shape!: number[];
  @ApiProperty({ enum: ['json', 'base64'] }) format!: string;
  @ApiPropertyOptional({ enum: ['float32'] }) dtype?: string;
  @ApiProperty({
    description:
      'json: one number array per image; base64: one little-endian float32 string per image',
    type: 'array',
    items: {},
  })
  vectors!: unknown[];
}

export class OodResponse {
  @ApiProperty() model!: string;
  @ApiPropertyOptional({ nullable: true }) primary!: string | null;
  @ApiProperty({
    description: 'per image: every score, and the flags of the scores that have a threshold',
    type: 'array',
    items: { type: 'object' },
  })
  results!: { scores: Record<string, number>; flagged: Record<string, boolean> }[];
}
