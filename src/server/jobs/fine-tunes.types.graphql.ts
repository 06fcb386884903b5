/** GraphQL types (code first) for fine-tune jobs; maps from FineTuneJobView. */
import { Field, Float, ID, InputType, Int, ObjectType, PartialType } from '@nestjs/graphql';
import { IsObject, IsOptional, IsString } from 'class-validator';
import type { FineTuneEvent as FineTuneEventData, FineTuneJobView } from './fine-tune.types';

@ObjectType()
export class MetricValue {
  @Field() name!: string;
  @Field(() => Float) value!: number;
}

@ObjectType()
export class FineTuneHyperparameters {
  @Field(() => Int, { nullable: true }) epochs?: number;
  @Field(() => Int, { nullable: true }) batchSize?: number;
  @Field(() => Float, { nullable: true }) learningRate?: number;
  @Field(() => Float, { nullable: true }) weightDecay?: number;
  @Field(() => Int, { nullable: true }) warmupEpochs?: number;
  @Field(() => Float, { nullable: true }) labelSmoothing?: number;
  @Field(() => Float, { nullable: true }) lambdaFlow?: number;
  @Field(() => Int, { nullable: true }) steps?: number;
  @Field(() => Float, { nullable: true }) tStar?: number;
  @Field({ nullable: true }) solver?: string;
  @Field({ nullable: true }) gradientMode?: string;
  @Field({ nullable: true }) freezeFlow?: boolean;
  @Field(() => Int, { nullable: true }) seed?: number;
  @Field({ nullable: true }) allowResize?: boolean;
}

/** The same fields as an input type (all already optional), so the two cannot drift apart. */
@InputType()
export class FineTuneHyperparametersInput extends PartialType(FineTuneHyperparameters, InputType) {}

/** class-validator marks for the global ValidationPipe; ranges are checked by the service. */
@InputType()
export class CreateFineTuneInput {
  @Field({
    nullable: true,
    description: '"name@version", a name for its latest version, or null for the default model',
  })
  @IsOptional()
  @IsString()
  model?: string;

  @Field({ description: 'Dataset id from POST /datasets' })
  @IsString()
  dataset!: string;

  @Field({ nullable: true, description: 'Held-out dataset id (evaluation, OOD calibration)' })
  @IsOptional()
  @IsString()
  evalDataset?: string;

  @Field({
    nullable: true,
    description: 'Dataset id of images to flag: they choose the primary OOD score',
  })
  @IsOptional()
  @IsString()
  oodDataset?: string;

  @Field(() => FineTuneHyperparametersInput, { nullable: true })
  @IsOptional()
  @IsObject()
  hyperparameters?: FineTuneHyperparametersInput;

  @Field({ nullable: true, description: "New model's name (default: the base model's)" })
  @IsOptional()
  @IsString()
  name?: string;
}

@ObjectType()
export class FineTuneProgress {
  @Field(() => Int) epoch!: number;
  @Field(() => Int) epochs!: number;
  @Field(() => Int) step!: number;
  @Field(() => Int) stepsPerEpoch!: number;
  @Field(() => Float, { description: '0..1 over the whole job' }) progress!: number;
  @Field(() => Float, { nullable: true }) loss?: number;
  @Field(() => [MetricValue]) metrics!: MetricValue[];
}

@ObjectType()
export class EpochMetrics {
  @Field(() => Int) epoch!: number;
  @Field(() => Float, { nullable: true }) loss?: number;
  @Field(() => [MetricValue]) metrics!: MetricValue[];
}

@ObjectType()
export class FineTuneResult {
  @Field({ description: 'The new model, "name@version", servable at once' }) model!: string;
  @Field(() => [MetricValue]) metrics!: MetricValue[];
  @Field(() => Int, { nullable: true }) resumedFromEpoch?: number;
  @Field({ nullable: true, description: 'Primary OOD score of the fitted thresholds' })
  oodPrimary?: string;
  @Field(() => [String], { description: 'OOD scores with fitted thresholds' })
  oodScores!: string[];
  @Field({ nullable: true, description: 'Why no OOD thresholds were fitted' })
  oodError?: string;
  @Field(() => [MetricValue], {
    nullable: true,
    description: "Each OOD score's AUROC against the job's oodDataset (which chose oodPrimary)",
  })
  oodSelectionAuroc?: MetricValue[];
}

@ObjectType()
export class FineTuneJob {
  @Field(() => ID) id!: string;
  @Field({ description: 'queued, running, cancelling, succeeded, failed or cancelled' })
  status!: string;
  @Field() model!: string;
  @Field() dataset!: string;
  @Field({ nullable: true }) evalDataset?: string;
  @Field({ nullable: true }) oodDataset?: string;
  @Field(() => FineTuneHyperparameters) hyperparameters!: FineTuneHyperparameters;
  @Field(() => FineTuneProgress, { nullable: true }) progress?: FineTuneProgress;
  @Field(() => [EpochMetrics]) history!: EpochMetrics[];
  @Field(() => FineTuneResult, { nullable: true }) result?: FineTuneResult;
  @Field({ nullable: true }) error?: string;
  @Field(() => Int) attempts!: number;
  @Field() createdAt!: string;
  @Field({ nullable: true }) startedAt?: string;
  @Field({ nullable: true }) finishedAt?: string;
}

const metricList = (m?: Record<string, number>): MetricValue[] =>
  Object.entries(m ?? {}).map(([name, value]) => ({ name, value }));

export function toGraphql(v: FineTuneJobView): FineTuneJob {
  return {
    id: v.id,
    status: v.status,
    model: v.model,
    dataset: v.dataset,
    evalDataset: v.evalDataset ?? undefined,
    oodDataset: v.oodDataset ?? undefined,
    hyperparameters: { ...v.hyperparameters },
    progress: v.progress ? { ...v.progress, metrics: metricList(v.progress.metrics) } : undefined,
    history: v.history.map((h) => ({ ...h, metrics: metricList(h.metrics) })),
    result: v.result
      ? {
          model: v.result.model,
          metrics: metricList(v.result.metrics),
          resumedFromEpoch: v.result.resumedFromEpoch,
          ...('error' in v.result.ood
            ? { oodScores: [], oodError: v.result.ood.error }
            : {
                oodPrimary: v.result.ood.primary,
                oodScores: v.result.ood.scores,
                ...(v.result.ood.selectionAuroc
                  ? { oodSelectionAuroc: metricList(v.result.ood.selectionAuroc) }
                  : {}),
              }),
        }
      : undefined,
    error: v.error ?? undefined,
    attempts: v.attempts,
    createdAt: v.createdAt,
    startedAt: v.startedAt ?? undefined,
    finishedAt: v.finishedAt ?? undefined,
  };
}

@ObjectType({
  description: 'A fine-tune job event: the job now (snapshot), a status change, or progress',
})
export class FineTuneEvent {
  @Field({ description: 'snapshot, status or progress' }) type!: string;
  @Field(() => ID) jobId!: string;
  @Field({ nullable: true }) status?: string;
  @Field(() => FineTuneProgress, { nullable: true }) progress?: FineTuneProgress;
  @Field({ nullable: true }) error?: string;
  @Field({ nullable: true }) at?: string;
}

export function eventToGraphql(m: { type: string; data: unknown }): FineTuneEvent {
  if (m.type === 'snapshot') {
    const v = m.data as FineTuneJobView;
    return {
      type: 'snapshot',
      jobId: v.id,
      status: v.status,
      progress: v.progress ? { ...v.progress, metrics: metricList(v.progress.metrics) } : undefined,
      error: v.error ?? undefined,
    };
  }
  const e = m.data as FineTuneEventData;
  return e.type === 'progress'
    ? {
        type: e.type,
        jobId: e.jobId,
        progress: { ...e.progress, metrics: metricList(e.progress.metrics) },
        at: e.at,
      }
    : { type: e.type, jobId: e.jobId, status: e.status, error: e.error, at: e.at };
}
