/**
 * Results of the inference operations: one class per shape, each field declared once for OpenAPI
 * (REST response) and GraphQL (object type) with ApiField; the ML boundary returns objects of
 * these types. A field with only @ApiProperty is REST-only.
 */
import { Field, Float, Int, ObjectType } from '@nestjs/graphql';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ApiField } from '../common/api-field';

@ObjectType()
export class LabelProbability {
  @ApiField(String) label!: string;
  @ApiField(Float) probability!: number;
}

@ObjectType()
export class OodFlag {
  @ApiField(String, { description: 'name of the primary OOD score' }) name!: string;
  @ApiField(Float) score!: number;

  @ApiField(Boolean, {
    description: 'true when the score is on the out-of-distribution side of the threshold',
  })
  flagged!: boolean;
}

@ObjectType()
export class Classification {
  @ApiField(String) label!: string;
  @ApiField(Int) index!: number;
  @ApiField(Float) probability!: number;
  @ApiField([LabelProbability]) topK!: LabelProbability[];

  @ApiField(OodFlag, {
    nullable: true,
    description: 'primary OOD score and flag; null when the model has no thresholds',
  })
  ood!: OodFlag | null;
}

@ObjectType()
export class ClassifyResponse {
  @ApiField(String, { openapi: { example: 'prg-mnist@4' } }) model!: string;
  @ApiField([Classification], { description: 'one per image, in request order' })
  results!: Classification[];
}

@ObjectType()
export class FeaturesResponse {
  @ApiField(String) model!: string;
  @ApiField(Float) t!: number;
  @ApiField([Int], { description: '[images, ...per-image feature shape]' }) shape!: number[];

  // REST only: GraphQL always answers number lists.
  @ApiProperty({ enum: ['json', 'base64'] }) format!: 'json' | 'base64';
  @ApiPropertyOptional({ enum: ['float32'] }) dtype?: 'float32';

  // A list of lists for GraphQL; REST may also answer base64 strings, so the two are declared apart.
  @Field(() => [[Float]], { description: 'one flattened vector per image' })
  @ApiProperty({
    description:
      'json: one number array per image; base64: one little-endian float32 string per image',
    type: 'array',
    items: {},
  })
  vectors!: number[][] | string[];
}

export class OodImageScores {
  @ApiProperty({ type: 'object', additionalProperties: { type: 'number' } })
  scores!: Record<string, number>;

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'boolean' },
    description: 'the flags of the scores that have a threshold',
  })
  flagged!: Record<string, boolean>;
}

export class OodResponse {
  @ApiProperty() model!: string;
  @ApiPropertyOptional({ nullable: true, type: String }) primary!: string | null;
  @ApiProperty({ type: [OodImageScores], description: 'per image, in request order' })
  results!: OodImageScores[];
}

export class TrajectoryFramesResponse {
  @ApiProperty() model!: string;
  @ApiProperty({ type: [Number], description: 'frame times, from 0 (the image) to 1 (noise)' })
  t!: number[];
  @ApiProperty({ type: [String], description: 'one base64 PNG per frame' }) frames!: string[];
}

@ObjectType()
export class SamplesResponse {
  @ApiField(String) model!: string;
  @ApiField([Int], { description: '[n, C, H, W]' }) shape!: number[];
  @ApiField(String) solver!: string;
  @ApiField(Int) steps!: number;
  @ApiField(Int) seed!: number;
  @ApiField(Int, { optional: true, description: 'the class asked for (conditional models)' })
  classLabel?: number | null;
  @ApiField([String], { description: 'one base64 PNG per image, in order' }) images!: string[];
}
