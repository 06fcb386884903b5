/**
 * The API's shapes as the dashboard reads them: the server's own declarations (type-only imports,
 * erased from the bundle), so a change to the API fails the dashboard's type check instead of
 * drifting from it.
 */
export type {
  ClassifyResponse,
  Classification,
  FeaturesResponse,
  TrajectoryFramesResponse,
} from '../../src/server/schemas/inference-responses';
export type { Model, ModelList } from '../../src/server/schemas/model.schema';
export type { DatasetInfo } from '../../src/server/datasets/datasets.service';
export type { DatasetSamplesResponse } from '../../src/server/datasets/dataset.dto';
export type { FineTuneEvent, FineTuneJobView } from '../../src/server/jobs/fine-tune.types';
export type { FineTuneStatus } from '../../src/server/jobs/fine-tune-status';
export type { FineTuneProgress } from '../../src/prg/training/job-api';
export type { SolverName } from '../../src/prg/manifest';
