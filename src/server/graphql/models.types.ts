/** GraphQL object types (code first) for models and inference. */
import { Field, Float, Int, ObjectType } from '@nestjs/graphql';

@ObjectType()
export class ModelInput {
  @Field(() => Int) channels!: number;
  @Field(() => Int) height!: number;
  @Field(() => Int) width!: number;
}

@ObjectType()
export class ModelSolver {
  @Field() name!: string;
  @Field(() => Int) steps!: number;
  @Field(() => Float) tStar!: number;
}

@ObjectType()
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
  @Field() id!: string;
  @Field() name!: string;
  @Field() version!: string;
  @Field(() => String, { nullable: true }) description!: string | null;
  @Field() isDefault!: boolean;
  @Field() loaded!: boolean;
  @Field() createdAt!: string;
  @Field() interpolant!: string;
  @Field(() => ModelInput) input!: ModelInput;
  @Field(() => [String]) classes!: string[];
  @Field(() => ModelSolver) solver!: ModelSolver;
  @Field(() => [ModelMetric]) metrics!: ModelMetric[];
  @Field(() => [OodThreshold]) oodThresholds!: OodThreshold[];
}

@ObjectType()
export class LabelProbability {
  @Field() label!: string;
  @Field(() => Float) probability!: number;
}

@ObjectType()
export class OodFlag {
  @Field() name!: string;
  @Field(() => Float) score!: number;
  @Field() flagged!: boolean;
}

@ObjectType()
export class Classification {
  @Field() label!: string;
  @Field(() => Int) index!: number;
  @Field(() => Float) probability!: number;
  @Field(() => [LabelProbability]) topK!: LabelProbability[];
  @Field(() => OodFlag, { nullable: true }) ood!: OodFlag | null;
}

@ObjectType()
export class ClassifyPayload {
  @Field() model!: string;
  @Field(() => [Classification]) results!: Classification[];
}

@ObjectType()
export class FeaturesPayload {
  @Field() model!: string;
  @Field(() => Float) t!: number;
  @Field(() => [Int], { description: '[images, ...per-image feature shape]' }) shape!: number[];
  @Field(() => [[Float]], { description: 'one flattened vector per image' }) vectors!: number[][];
}
