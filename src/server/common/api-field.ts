/**
 * One property decorator for a field both APIs show: its GraphQL field and its OpenAPI property
 * get the same type, description and nullability from one declaration.
 */
import { applyDecorators } from '@nestjs/common';
import { Field, Float, ID, Int } from '@nestjs/graphql';
import { ApiProperty, ApiPropertyOptional, ApiPropertyOptions } from '@nestjs/swagger';
import type { GraphQLScalarType } from 'graphql';

/** A GraphQL scalar (Int, Float, ID) or a class (String, Boolean, a decorated shape). */
type FieldType = GraphQLScalarType | (abstract new (...args: never[]) => unknown);

export interface ApiFieldOptions {
  description?: string;
  /** May be absent (inputs, optional outputs): GraphQL nullable, OpenAPI not required. */
  optional?: boolean;
  /** Always present, may be null: GraphQL nullable, OpenAPI `nullable`. */
  nullable?: boolean;
  /** Extra OpenAPI schema (example, enum, ...). */
  openapi?: ApiPropertyOptions;
}

/** The OpenAPI type of a GraphQL type: Int and Float are numbers, ID a string, classes as they are. */
function openapiType(t: FieldType): ApiPropertyOptions['type'] {
  if (t === Int) return 'integer';
  if (t === Float) return 'number';
  if (t === ID) return String;
  return t as ApiPropertyOptions['type'];
}

/**
 * `type` is resolved now (declare referenced classes first); a list is `[T]`. The OpenAPI side of
 * a list of a GraphQL-only shape can be overridden with `openapi.type`.
 */
export function ApiField(
  type: FieldType | [FieldType],
  o: ApiFieldOptions = {},
): PropertyDecorator {
  const list = Array.isArray(type);
  const item = list ? type[0] : type;
  const props = {
    type: openapiType(item),
    isArray: list || undefined,
    description: o.description,
    ...(o.nullable ? { nullable: true } : {}),
    ...o.openapi,
  } as ApiPropertyOptions;
  return applyDecorators(
    Field(() => (list ? [item] : item), {
      nullable: o.optional || o.nullable,
      description: o.description,
    }),
    o.optional ? ApiPropertyOptional(props) : ApiProperty(props),
  );
}
