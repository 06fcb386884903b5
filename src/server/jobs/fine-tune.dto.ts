/**
 * The fine-tune API's shapes, each declared once with its GraphQL, OpenAPI and class-validator
 * decorators: the create-job input (the REST body and the GraphQL input alike) and the job as it
 * is reported. Metrics are a map on REST ({name: value}) but a list of {name, value} on GraphQL,
 * which has no map type: the shapes that hold metrics share their other fields through the
 * abstract bases here; their REST classes follow each base, the GraphQL ones (and the mapping to
 * them) are in fine-tunes.types.graphql.ts. FineTuneJobView (fine-tune.types.ts) is
 * FineTuneJobResponse.
 */
import { InputType, ObjectType, Float, ID, Int } from '@nestjs/graphql';
import { ApiProperty, ApiPropertyOptional, ApiPropertyOptions } from '@nestjs/swagger';
import { IsObject, IsOptional, IsString } from 'class-validator';
import type { FineTuneProgress } from '../../prg/training/job-api';
import type { FineTuneHyperparameters } from '../../prg/training/hyperparameters';
import { ApiField } from '../common/api-field';
import { FINE_TUNE_STATUSES, type FineTuneStatus } from './fine-tune-status';
import { FineTuneHyperparametersInput } from './hyperparameters';

/**
 * POST /fine-tunes and createFineTune(input). The global ValidationPipe checks the types here
 * (REST; GraphQL's schema does the same); the service checks values (INVALID_HYPERPARAMETERS
 * listing every problem), then that the model and datasets exist and fit.
 */
@InputType()
export class CreateFineTuneInput {
  @ApiField(String, {
    optional: true,
    description:
      'Base model: "name@version", a name for its latest version, or absent for the default base (flow-<dataset> of the default model when installed, else the default model)',
  })
  @IsOptional()
  @IsString()
  model?: string | null;

  @ApiField(String, { description: 'Dataset id from POST /datasets' })
  @IsString()
  dataset!: string;

  @ApiField(String, {
    optional: true,
    description:
      'Held-out dataset id: evaluation each epoch and OOD calibration (default: a held-out part of `dataset`)',
  })
  @IsOptional()
  @IsString()
  evalDataset?: string | null;

  @ApiField(String, {
    optional: true,
    description:
      'Dataset id of images the new model should flag as out-of-distribution: the OOD score that best separates them from held-out training images becomes its primary score',
  })
  @IsOptional()
  @IsString()
  oodDataset?: string | null;

  @ApiField(FineTuneHyperparametersInput, {
    optional: true,
    description: 'Absent fields take their defaults (steps, tStar, solver: the base model’s)',
    openapi: { example: { epochs: 2, learningRate: 0.0001, allowResize: false } },
  })
  @IsOptional()
  @IsObject()
  hyperparameters?: FineTuneHyperparametersInput | null;

  @ApiField(String, {
    optional: true,
    description: "New model's name (default: the base model's name)",
  })
  @IsOptional()
  @IsString()
  name?: string | null;
}

const METRIC_MAP: ApiPropertyOptions = { type: 'object', additionalProperties: { type: 'number' } };

@ObjectType({ isAbstract: true })
export abstract class ProgressFields {
  @ApiField(Int, { description: 'counted from 0' }) epoch!: number;
  @ApiField(Int) epochs!: number;
  @ApiField(Int) step!: number;
  @ApiField(Int) stepsPerEpoch!: number;
  @ApiField(Float, { description: '0..1 over the whole job' }) progress!: number;
  @ApiField(Float, { optional: true }) loss?: number;
}

export class FineTuneProgressDto extends ProgressFields implements FineTuneProgress {
  @ApiPropertyOptional(METRIC_MAP) metrics?: Record<string, number>;
}

@ObjectType({ isAbstract: true })
export abstract class EpochFields {
  @ApiField(Int) epoch!: number;
  @ApiField(Float, { optional: true }) loss?: number;
}

export class EpochMetricsDto extends EpochFields {
  @ApiPropertyOptional(METRIC_MAP) metrics?: Record<string, number>;
}

@ObjectType({ isAbstract: true })
export abstract class ResultFields {
  @ApiField(String, {
    description: 'The new model, "name@version", servable at once',
    openapi: { example: 'prg-mnist@1.0.0-ft.a6851fe1fd28' },
  })
  model!: string;
  @ApiField(Int, { optional: true }) resumedFromEpoch?: number;
  @ApiField(Int, {
    optional: true,
    description:
      'Optimizer steps of the whole job, including those before a resume (equal to an uninterrupted run)',
  })
  steps?: number;
}

/** OOD thresholds fitted on the new model (src/prg/ood/fit.ts), or why not. */
export type OodOutcome =
  | {
      primary: string;
      scores: string[];
      /** Each score's AUROC against the job's oodDataset, when it chose the primary. */
      selectionAuroc?: Record<string, number>;
    }
  | { error: string };

export class FineTuneResultDto extends ResultFields {
  @ApiProperty() modelDir!: string;
  @ApiProperty(METRIC_MAP) metrics!: Record<string, number>;
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description:
      "{primary, scores} of the fitted OOD thresholds (and selectionAuroc, each score's AUROC against the job's oodDataset, when it chose the primary), or {error}",
    example: { primary: 'mahalanobis', scores: ['mahalanobis', 'msp'] },
  })
  ood!: OodOutcome;
}

export const JOB_RUN_OUTCOMES = [
  'succeeded',
  'failed',
  'cancelled',
  'interrupted',
  'lost',
] as const;
export type JobRunOutcome = (typeof JOB_RUN_OUTCOMES)[number];

/** One attempt at a job: which worker ran it and how it ended (the job's event history). */
@ObjectType('FineTuneRun')
export class JobRunDto {
  @ApiField(Int, { description: '1 for the first run; > 1 after a dead worker or a shutdown' })
  attempt!: number;
  @ApiField(String, { description: 'the worker that ran it, "<host>.<pid>"' })
  worker!: string;
  @ApiField(String) startedAt!: string;
  @ApiField(String, { optional: true }) endedAt?: string;
  @ApiField(String, {
    optional: true,
    description: `${JOB_RUN_OUTCOMES.join(', ')} (lost: its worker stopped without finishing, e.g. killed; the job was requeued); absent while running`,
    openapi: { enum: [...JOB_RUN_OUTCOMES] },
  })
  outcome?: JobRunOutcome;
  @ApiField(String, { optional: true }) detail?: string;
}

@ObjectType({ isAbstract: true })
export abstract class JobFields {
  @ApiField(ID, { openapi: { example: 'ft_a6851fe1fd28' } }) id!: string;
  @ApiField(String, {
    description: FINE_TUNE_STATUSES.join(', '),
    openapi: { enum: [...FINE_TUNE_STATUSES] },
  })
  status!: FineTuneStatus;
  @ApiField(String, { openapi: { example: 'prg-mnist@1.0.0' } }) model!: string;
  @ApiField(String) dataset!: string;
  @ApiField(String, { nullable: true }) evalDataset!: string | null;
  @ApiField(String, { nullable: true }) oodDataset!: string | null;
  @ApiField(FineTuneHyperparametersInput) hyperparameters!: FineTuneHyperparameters;
  @ApiField(String, { nullable: true }) error!: string | null;
  @ApiField(Int, { description: 'times a worker started it (> 1 after a dead worker or shutdown)' })
  attempts!: number;
  @ApiField([JobRunDto], { description: 'every run of the job, oldest first, with its outcome' })
  runs!: JobRunDto[];
  @ApiField(String) createdAt!: string;
  @ApiField(String, { nullable: true }) startedAt!: string | null;
  @ApiField(String, { nullable: true }) finishedAt!: string | null;
}

export class FineTuneJobResponse extends JobFields {
  @ApiProperty({ type: FineTuneProgressDto, nullable: true, description: 'latest report' })
  progress!: FineTuneProgressDto | null;
  @ApiProperty({ type: [EpochMetricsDto], description: 'one entry per finished epoch' })
  history!: EpochMetricsDto[];
  @ApiProperty({ type: FineTuneResultDto, nullable: true }) result!: FineTuneResultDto | null;
}
