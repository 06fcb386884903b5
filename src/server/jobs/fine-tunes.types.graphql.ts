/**
 * The GraphQL shapes of fine-tune jobs that differ from REST (metrics as lists of {name, value},
 * the OOD outcome as flat fields, events), built on the shared bases in fine-tune.dto.ts, and
 * their mapping from FineTuneJobView.
 */
import { Field, Float, ID, ObjectType } from '@nestjs/graphql';
import { EpochFields, JobFields, ProgressFields, ResultFields } from './fine-tune.dto';
import type { FineTuneProgress as FineTuneProgressData } from '../../prg/training/job-api';
import type { FineTuneEvent as FineTuneEventData, FineTuneJobView } from './fine-tune.types';

@ObjectType()
export class MetricValue {
  @Field() name!: string;
  @Field(() => Float) value!: number;
}

@ObjectType()
export class FineTuneProgress extends ProgressFields {
  @Field(() => [MetricValue]) metrics!: MetricValue[];
}

@ObjectType()
export class EpochMetrics extends EpochFields {
  @Field(() => [MetricValue]) metrics!: MetricValue[];
}

@ObjectType()
export class FineTuneResult extends ResultFields {
  @Field(() => [MetricValue]) metrics!: MetricValue[];
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
export class FineTuneJob extends JobFields {
  @Field(() => FineTuneProgress, { nullable: true }) progress!: FineTuneProgress | null;
  @Field(() => [EpochMetrics]) history!: EpochMetrics[];
  @Field(() => FineTuneResult, { nullable: true }) result!: FineTuneResult | null;
}

const metricList = (m?: Record<string, number>): MetricValue[] =>
  Object.entries(m ?? {}).map(([name, value]) => ({ name, value }));
const progressOf = (p: FineTuneProgressData): FineTuneProgress => ({
  ...p,
  metrics: metricList(p.metrics),
});

export function toGraphql(v: FineTuneJobView): FineTuneJob {
  return {
    ...v,
    progress: v.progress ? progressOf(v.progress) : null,
    history: v.history.map((h) => ({ ...h, metrics: metricList(h.metrics) })),
    result: v.result
      ? {
          model: v.result.model,
          metrics: metricList(v.result.metrics),
          resumedFromEpoch: v.result.resumedFromEpoch,
          steps: v.result.steps,
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
      : null,
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
      progress: v.progress ? progressOf(v.progress) : undefined,
      error: v.error ?? undefined,
    };
  }
  const e = m.data as FineTuneEventData;
  return e.type === 'progress'
    ? {
        type: e.type,
        jobId: e.jobId,
        progress: progressOf(e.progress),
        at: e.at,
      }
    : { type: e.type, jobId: e.jobId, status: e.status, error: e.error, at: e.at };
}
