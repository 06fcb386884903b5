/** Response shapes of /fine-tunes, for the OpenAPI document (/docs). Mirror FineTuneJobView. */
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class FineTuneProgressDto {
  @ApiProperty({ description: 'counted from 0' }) epoch!: number;
  @ApiProperty() epochs!: number;
  @ApiProperty() step!: number;
  @ApiProperty() stepsPerEpoch!: number;
  @ApiProperty({ description: '0..1 over the whole job' }) progress!: number;
  @ApiPropertyOptional() loss?: number;
  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'number' } })
  metrics?: Record<string, number>;
}

export class EpochMetricsDto {
  @ApiProperty() epoch!: number;
  @ApiPropertyOptional() loss?: number;
  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'number' } })
  metrics?: Record<string, number>;
}

export class FineTuneResultDto {
  @ApiProperty({ example: 'prg-mnist@1.0.0-ft.a6851fe1fd28' }) model!: string;
  @ApiProperty() modelDir!: string;
  @ApiProperty({ type: 'object', additionalProperties: { type: 'number' } })
  metrics!: Record<string, number>;
  @ApiPropertyOptional() resumedFromEpoch?: number;
  @ApiProperty({
    description:
      "{primary, scores} of the fitted OOD thresholds (and selectionAuroc, each score's AUROC against the job's oodDataset, when it chose the primary), or {error}",
    example: { primary: 'mahalanobis', scores: ['mahalanobis', 'msp'] },
  })
  ood!: object;
}

export class FineTuneJobResponse {
  @ApiProperty({ example: 'ft_a6851fe1fd28' }) id!: string;
  @ApiProperty({ enum: ['queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled'] })
  status!: string;
  @ApiProperty({ example: 'prg-mnist@1.0.0' }) model!: string;
  @ApiProperty() dataset!: string;
  @ApiProperty({ nullable: true, type: String }) evalDataset!: string | null;
  @ApiProperty({ nullable: true, type: String }) oodDataset!: string | null;
  @ApiProperty({ type: 'object', additionalProperties: true }) hyperparameters!: object;
  @ApiProperty({ type: FineTuneProgressDto, nullable: true }) progress!: FineTuneProgressDto | null;
  @ApiProperty({ type: [EpochMetricsDto] }) history!: EpochMetricsDto[];
  @ApiProperty({ type: FineTuneResultDto, nullable: true }) result!: FineTuneResultDto | null;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
  @ApiProperty({ description: 'times a worker started it (> 1 after a dead worker or shutdown)' })
  attempts!: number;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ nullable: true, type: String }) startedAt!: string | null;
  @ApiProperty({ nullable: true, type: String }) finishedAt!: string | null;
}
