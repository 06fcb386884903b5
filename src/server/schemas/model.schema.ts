/**
 * A servable model as the API shows it: one class for REST (GET /models, /models/:id) and GraphQL
 * (`models`, `model`). Metrics and OOD thresholds are records in REST; GraphQL has no map type, so
 * there they are lists, resolved from the same object by ModelsResolver (fields with only
 * @ApiProperty below are REST-only).
 */
import { Field, Float, Int, ObjectType } from '@nestjs/graphql';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ApiField } from '../common/api-field';
import type { MetricRecord, ModelManifest } from '../../prg/manifest';

@ObjectType()
export class ModelInput {
  @ApiField(Int) channels!: number;
  @ApiField(Int) height!: number;
  @ApiField(Int) width!: number;
}

@ObjectType()
export class ModelSolver {
  @ApiField(String) name!: string;
  @ApiField(Int) steps!: number;
  @ApiField(Float) tStar!: number;
}

@ObjectType({ description: 'A metric of the model and the command that measured it' })
export class ModelMetric {
  @Field() name!: string;
  @Field(() => Float) value!: number;
  @Field() data!: string;
  @Field(() => Int) n!: number;
  @Field() command!: string;
  @Field() measuredAt!: string;
}

@ObjectType()
export class OodThreshold {
  @Field() name!: string;
  @Field(() => Float) threshold!: number;
  @Field(() => Float) tpr!: number;
  @Field() higherIsInDistribution!: boolean;
  @Field() primary!: boolean;
}

@ObjectType()
export class Model {
  @ApiField(String, { openapi: { example: 'prg-mnist@4' } }) id!: string;
  @ApiField(String) name!: string;
  @ApiField(String) version!: string;
  @ApiField(String, { nullable: true }) description!: string | null;
  @ApiField(Boolean) isDefault!: boolean;
  @ApiField(Boolean) loaded!: boolean;

  @ApiProperty({ nullable: true, type: String, description: 'why its last load failed' })
  loadError!: string | null;

  @ApiField(String) createdAt!: string;
  @ApiField(ModelInput) input!: ModelInput;
  @ApiField([String]) classes!: string[];
  @ApiField(String, { openapi: { enum: ['icfm', 'otcfm', 'gvp'] } }) interpolant!: string;
  @ApiField(ModelSolver) solver!: ModelSolver;

  @ApiProperty({ type: 'object', additionalProperties: true, description: 'name → record' })
  metrics!: Record<string, MetricRecord>;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    nullable: true,
    description: '{primary, scores: name → {threshold, tpr, higherIsInDistribution}}',
  })
  ood!: ModelManifest['ood'] | null;
}

export class ModelDetail extends Model {
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'manifest.json' })
  manifest!: ModelManifest;
}

export class ModelList {
  @ApiProperty({ nullable: true, type: String, description: 'id of the default model' })
  default!: string | null;
  @ApiProperty({ type: [Model] }) models!: Model[];
}
