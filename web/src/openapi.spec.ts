/**
 * Fine-tune form fields from an OpenAPI document: the shapes @nestjs/swagger emits for the
 * create-job body, both as it is today (hyperparameters an undescribed object → a JSON field) and
 * as the jobs schema declares each hyperparameter (types, limits, enums, defaults → inputs).
 */
import { describe, expect, it } from 'vitest';
import {
  buildBody,
  fieldsOf,
  NumberField,
  numberProblem,
  OpenApiDocument,
  rangeText,
  requestBody,
} from './openapi';

const doc = (hyperparameters: object): OpenApiDocument => ({
  paths: {
    '/fine-tunes': {
      post: {
        requestBody: {
          content: {
            'application/json': { schema: { $ref: '#/components/schemas/CreateFineTune' } },
          },
        },
      },
    },
  },
  components: {
    schemas: {
      CreateFineTune: {
        type: 'object',
        required: ['dataset'],
        properties: {
          model: { type: 'string', description: 'base model' },
          dataset: { type: 'string' },
          hyperparameters: hyperparameters,
        },
      },
      Hyperparameters: {
        type: 'object',
        properties: {
          epochs: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
          learningRate: {
            type: 'number',
            minimum: 0,
            maximum: 1,
            exclusiveMinimum: true,
            default: 2.5e-4,
          },
          labelSmoothing: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
          solver: { type: 'string', enum: ['euler', 'midpoint', 'rk4'] },
          freezeFlow: { type: 'boolean', default: false },
        },
      },
    },
  },
});

describe('fieldsOf the create-job body', () => {
  it('reads each declared hyperparameter with its limits, choices and default', () => {
    const d = doc({
      allOf: [{ $ref: '#/components/schemas/Hyperparameters' }],
      description: 'optional',
    });
    const fields = fieldsOf(d, requestBody(d, '/fine-tunes'));
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ['model', 'text', false],
      ['dataset', 'text', true],
      ['hyperparameters', 'object', false],
    ]);
    const hp = fields[2];
    if (hp.kind !== 'object') throw new Error('not an object');
    expect(hp.description).toBe('optional');
    const [epochs, lr, ls, solver, freeze] = hp.fields;
    expect(epochs).toMatchObject({
      kind: 'integer',
      min: 1,
      max: 1000,
      exclusiveMin: false,
      default: 10,
    });
    expect(lr).toMatchObject({ kind: 'number', min: 0, max: 1, exclusiveMin: true });
    // OpenAPI 3.1 puts the exclusive bound in exclusiveMaximum itself.
    expect(ls).toMatchObject({ kind: 'number', min: 0, max: 1, exclusiveMax: true });
    expect(rangeText(lr as NumberField)).toBe('(0, 1]');
    expect(rangeText(ls as NumberField)).toBe('[0, 1)');
    expect(solver).toMatchObject({ kind: 'choice', values: ['euler', 'midpoint', 'rk4'] });
    expect(freeze).toMatchObject({ kind: 'boolean', default: false });
  });

  it('falls back to a JSON field when the object lists no properties', () => {
    const d = doc({ type: 'object', example: { epochs: 2 } });
    const hp = fieldsOf(d, requestBody(d, '/fine-tunes'))[2];
    expect(hp).toMatchObject({ kind: 'json', example: { epochs: 2 } });
  });

  it('names an undefined $ref', () => {
    const d = doc({ $ref: '#/components/schemas/Missing' });
    expect(() => fieldsOf(d, requestBody(d, '/fine-tunes'))).toThrow(
      '#/components/schemas/Missing',
    );
  });
});

describe('numberProblem', () => {
  const f = (o: Partial<NumberField>): NumberField => ({
    name: 'x',
    required: false,
    kind: 'number',
    exclusiveMin: false,
    exclusiveMax: false,
    ...o,
  });
  it('checks open and closed bounds and integrality', () => {
    expect(numberProblem(f({ min: 0, max: 1, exclusiveMin: true }), 0)).toBe(
      'x must be a number in (0, 1]',
    );
    expect(numberProblem(f({ min: 0, max: 1, exclusiveMin: true }), 1)).toBeNull();
    expect(numberProblem(f({ min: 0, max: 1, exclusiveMax: true }), 1)).toBe(
      'x must be a number in [0, 1)',
    );
    expect(numberProblem(f({ kind: 'integer', min: 1 }), 1.5)).toBe('x must be an integer ≥ 1');
    expect(numberProblem(f({}), Number.NaN)).toBe('x must be a number');
  });
});

describe('buildBody', () => {
  const d = doc({ $ref: '#/components/schemas/Hyperparameters' });
  const fields = fieldsOf(d, requestBody(d, '/fine-tunes'));

  it('sends only what was filled in, typed by the schema', () => {
    expect(
      buildBody(fields, {
        dataset: 'ds_1',
        model: '',
        'hyperparameters.epochs': '3',
        'hyperparameters.solver': 'rk4',
        'hyperparameters.freezeFlow': true,
      }),
    ).toEqual({
      body: { dataset: 'ds_1', hyperparameters: { epochs: 3, solver: 'rk4', freezeFlow: true } },
      problems: [],
    });
  });

  it('lists every problem: required fields, out-of-range numbers', () => {
    expect(
      buildBody(fields, { 'hyperparameters.epochs': '0', 'hyperparameters.learningRate': '0' })
        .problems,
    ).toEqual([
      'dataset is required',
      'hyperparameters.epochs must be an integer in [1, 1000]',
      'hyperparameters.learningRate must be a number in (0, 1]',
    ]);
  });

  it('parses the JSON fallback, or says it is not JSON', () => {
    const j = doc({ type: 'object' });
    const jf = fieldsOf(j, requestBody(j, '/fine-tunes'));
    expect(buildBody(jf, { dataset: 'd', hyperparameters: '{"epochs":1}' }).body).toEqual({
      dataset: 'd',
      hyperparameters: { epochs: 1 },
    });
    expect(buildBody(jf, { dataset: 'd', hyperparameters: '{epochs' }).problems).toEqual([
      'hyperparameters is not valid JSON',
    ]);
  });
});
