/**
 * Fine-tune hyperparameters at the API: one class, FineTuneHyperparametersInput, whose fields take
 * their GraphQL type, OpenAPI schema and class-validator rule from the table in
 * src/prg/training/hyperparameters.ts; and the check a job's hyperparameters pass before it is
 * queued, so a bad value is a 400 INVALID_HYPERPARAMETERS naming every problem, not a failed job.
 *
 * The global ValidationPipe does not descend into `hyperparameters` (no @ValidateNested): its
 * errors would be VALIDATION_FAILED without the deployment limits (MAX_EPOCHS, MAX_STEPS). The
 * service runs this class's validation instead, the same for REST bodies and GraphQL arguments.
 */
import { applyDecorators } from '@nestjs/common';
import { Field, Float, InputType, Int, ObjectType } from '@nestjs/graphql';
import { ApiPropertyOptional, ApiPropertyOptions } from '@nestjs/swagger';
import { plainToInstance } from 'class-transformer';
import { IsOptional, ValidateBy, validateSync } from 'class-validator';
import {
  accepts,
  crossFieldProblems,
  expectation,
  FineTuneHyperparameters,
  GradientMode,
  HYPERPARAMETER_NAMES,
  HYPERPARAMETERS,
  HyperparameterLimits,
  HyperparameterName,
  hyperparameterProblem,
  HyperparameterSpec,
  maxOf,
} from '../../prg/training/hyperparameters';
import type { FixedSolverName } from '../../prg/manifest';

export type { HyperparameterLimits };

/** GraphQL field, OpenAPI property and class-validator rule of the table's field `name`. */
function Hyperparameter(name: HyperparameterName): PropertyDecorator {
  const spec: HyperparameterSpec = HYPERPARAMETERS[name];
  const gqlType =
    spec.kind === 'int'
      ? Int
      : spec.kind === 'number'
        ? Float
        : spec.kind === 'boolean'
          ? Boolean
          : String;
  const schema: ApiPropertyOptions =
    spec.kind === 'int' || spec.kind === 'number'
      ? {
          type: spec.kind === 'int' ? 'integer' : 'number',
          minimum: spec.min,
          maximum: spec.max,
          ...(spec.kind === 'number' && spec.openMin ? { exclusiveMinimum: true } : {}),
          ...(spec.kind === 'number' && spec.openMax ? { exclusiveMaximum: true } : {}),
        }
      : spec.kind === 'choice'
        ? { type: 'string', enum: [...spec.values] }
        : { type: 'boolean' };
  return applyDecorators(
    Field(() => gqlType, { nullable: true, description: spec.description }),
    ApiPropertyOptional({ ...schema, description: spec.description, default: spec.default }),
    IsOptional(),
    ValidateBy({
      name: 'hyperparameter',
      validator: {
        validate: (v: unknown) => accepts(spec, v),
        defaultMessage: () => `${name}: expected ${expectation(spec)}`,
      },
    }),
  );
}

/**
 * A job's hyperparameters: the createFineTune input and, under another GraphQL name, the job's
 * field. GraphQL cannot name the deployment limits in its schema; the service checks them.
 */
@InputType('FineTuneHyperparametersInput')
@ObjectType('FineTuneHyperparameters')
export class FineTuneHyperparametersInput implements FineTuneHyperparameters {
  @Hyperparameter('epochs') epochs?: number;
  @Hyperparameter('batchSize') batchSize?: number;
  @Hyperparameter('learningRate') learningRate?: number;
  @Hyperparameter('weightDecay') weightDecay?: number;
  @Hyperparameter('warmupEpochs') warmupEpochs?: number;
  @Hyperparameter('labelSmoothing') labelSmoothing?: number;
  @Hyperparameter('lambdaFlow') lambdaFlow?: number;
  @Hyperparameter('steps') steps?: number;
  @Hyperparameter('tStar') tStar?: number;
  @Hyperparameter('solver') solver?: FixedSolverName;
  @Hyperparameter('gradientMode') gradientMode?: GradientMode;
  @Hyperparameter('freezeFlow') freezeFlow?: boolean;
  @Hyperparameter('seed') seed?: number;
  @Hyperparameter('allowResize') allowResize?: boolean;
}

// Every field of the table is declared above: a compile error names the missing one.
const declaresAll: Exclude<HyperparameterName, keyof FineTuneHyperparametersInput> extends never
  ? true
  : never = true;
void declaresAll;

/** Drops null/undefined entries (GraphQL sends nulls for absent optional fields). */
export function cleanHyperparameters(raw: unknown): FineTuneHyperparameters {
  if (!raw || typeof raw !== 'object') return {};
  return Object.fromEntries(
    Object.entries(raw as Record<string, unknown>).filter(([, v]) => v !== undefined && v !== null),
  ) as FineTuneHyperparameters;
}

/** Problems with `raw` (empty when valid), in the order of its keys; unknown keys are problems. */
export function hyperparameterProblems(raw: unknown, limits: HyperparameterLimits): string[] {
  if (raw === undefined || raw === null) return [];
  if (typeof raw !== 'object' || Array.isArray(raw)) return ['hyperparameters: expected an object'];
  const given = cleanHyperparameters(raw);
  const errors = validateSync(plainToInstance(FineTuneHyperparametersInput, given), {
    whitelist: true,
    forbidNonWhitelisted: true,
  });
  const failed = new Map(errors.map((e) => [e.property, e]));
  const problems: string[] = [];
  for (const [k, v] of Object.entries(given)) {
    const error = failed.get(k);
    if (error?.constraints?.whitelistValidation)
      problems.push(`hyperparameters.${k}: unknown (known: ${HYPERPARAMETER_NAMES.join(', ')})`);
    // The class checks the table's ranges; the deployment limits lower some maxima further.
    else if (
      error ||
      (typeof v === 'number' && v > maxOf(HYPERPARAMETERS[k as HyperparameterName], limits))
    )
      problems.push(hyperparameterProblem(k as HyperparameterName, v, limits)!);
  }
  return problems.length ? problems : crossFieldProblems(given);
}
