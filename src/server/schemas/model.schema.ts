/**
 * A servable model as the API shows it: one class for REST (GET /models, /models/:id) and GraphQL
 * (`models`, `model`). Metrics and OOD thresholds are records in REST; GraphQL has no map type, so
 * there they are lists, resolved from the same object by ModelsResolver (fields without @Field
 * below are REST-only).
 */
import { Field, Float, Int, ObjectType } from '@nestjs/graphql';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { MetricRecord, ModelManifest } from '../../prg/manifest';

@ObjectType()
export class ModelInput {
  @Field(() => Int) @ApiProperty() channels!: number;
  @Field(() => Int) @ApiProperty() height!: number;
  @Field(() => Int) @ApiProperty() width!: number;
}

@ObjectType()
export class ModelSolver {
  @Field() @ApiProperty() name!: string;
  @Field(() => Int) @ApiProperty() steps!: number;
  @Field(() => Float) @ApiProperty() tStar!: number;
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
  @Field() @ApiProperty({ example: 'prg-mnist@4' }) id!: string;
  @Field() @ApiProperty() name!: string;
  @Field() @ApiProperty() version!: string;

  @Field(() => String, { nullable: true })
  @ApiProperty({ nullable: true, type: String })
  description!: string | null;

  @Field() @ApiProperty() isDefault!: boolean;
  @Field() @ApiProperty() loaded!: boolean;

  @ApiProperty({ nullable: true, type: String, description: 'why its last load failed' })
  loadError!: string | null;

  @Field() @ApiProperty() createdAt!: string;
  @Field(() => ModelInput) @ApiProperty() input!: ModelInput;
  @Field(() => [String]) @ApiProperty({ type: [String] }) classes!: string[];
  @Field() @ApiProperty({ enum: ['icfm', 'otcfm', 'gvp'] }) interpolant!: string;
  @Field(() => ModelSolver) @ApiProperty() solver!: ModelSolver;

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
