/**
 * Results of the inference operations: one class per shape, carrying the OpenAPI (REST response)
 * and GraphQL (object type) decorators; the ML boundary returns objects of these types. A field
 * without @Field is REST-only.
 */
import { Field, Float, Int, ObjectType } from '@nestjs/graphql';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

@ObjectType()
export class LabelProbability {
  @Field() @ApiProperty() label!: string;
  @Field(() => Float) @ApiProperty() probability!: number;
}

@ObjectType()
export class OodFlag {
  @Field({ description: 'name of the primary OOD score' })
  @ApiProperty({ description: 'name of the primary OOD score' })
  name!: string;

  @Field(() => Float) @ApiProperty() score!: number;

  @Field({ description: 'true when the score is on the out-of-distribution side of the threshold' })
  @ApiProperty({
    description: 'true when the score is on the out-of-distribution side of the threshold',
  })
  flagged!: boolean;
}

@ObjectType()
export class Classification {
  @Field() @ApiProperty() label!: string;
  @Field(() => Int) @ApiProperty() index!: number;
  @Field(() => Float) @ApiProperty() probability!: number;
  @Field(() => [LabelProbability])
  @ApiProperty({ type: [LabelProbability] })
  topK!: LabelProbability[];

  @Field(() => OodFlag, {
    nullable: true,
    description: 'primary OOD score and flag; null when the model has no thresholds',
  })
  @ApiPropertyOptional({ type: OodFlag, nullable: true })
  ood!: OodFlag | null;
}

@ObjectType()
export class ClassifyResponse {
  @Field() @ApiProperty({ example: 'prg-mnist@4' }) model!: string;

  @Field(() => [Classification])
  @ApiProperty({ type: [Classification], description: 'one per image, in request order' })
  results!: Classification[];
}

@ObjectType()
export class FeaturesResponse {
  @Field() @ApiProperty() model!: string;
  @Field(() => Float) @ApiProperty() t!: number;

  @Field(() => [Int], { description: '[images, ...per-image feature shape]' })
  @ApiProperty({ type: [Number], description: '[images, ...per-image feature shape]' })
  shape!: number[];

  // REST only: GraphQL always answers number lists.
  @ApiProperty({ enum: ['json', 'base64'] }) format!: 'json' | 'base64';
  @ApiPropertyOptional({ enum: ['float32'] }) dtype?: 'float32';

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
