/**
 * Forms from the server's OpenAPI document (/docs-json): the fields of a request body with their
 * types, limits (minimum/maximum, exclusive or not), choices (enum) and defaults, so the dashboard
 * offers exactly what the API validates, from the same declarations. Pure functions (unit-tested
 * without a browser).
 */

/** The parts of an OpenAPI 3.x schema object read here. */
export interface SchemaObject {
  $ref?: string;
  allOf?: SchemaObject[];
  type?: string;
  properties?: Record<string, SchemaObject>;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  /** OpenAPI 3.0: a flag on minimum; 3.1: the bound itself. */
  exclusiveMinimum?: boolean | number;
  exclusiveMaximum?: boolean | number;
  default?: unknown;
  description?: string;
  example?: unknown;
  items?: SchemaObject;
}

export interface OpenApiDocument {
  paths: Record<
    string,
    Record<string, { requestBody?: { content?: Record<string, { schema?: SchemaObject }> } }>
  >;
  components?: { schemas?: Record<string, SchemaObject> };
}

interface Common {
  name: string;
  required: boolean;
  description?: string;
}
export interface NumberField extends Common {
  kind: 'integer' | 'number';
  min?: number;
  max?: number;
  exclusiveMin: boolean;
  exclusiveMax: boolean;
  default?: number;
}
export interface ChoiceField extends Common {
  kind: 'choice';
  values: string[];
  default?: string;
}
export interface BooleanField extends Common {
  kind: 'boolean';
  default?: boolean;
}
export interface TextField extends Common {
  kind: 'text';
  default?: string;
}
/** An object the document does not describe field by field (edited as JSON). */
export interface JsonField extends Common {
  kind: 'json';
  example?: unknown;
}
export interface ObjectField extends Common {
  kind: 'object';
  fields: Field[];
}
export type Field = NumberField | ChoiceField | BooleanField | TextField | JsonField | ObjectField;

/** Follows `$ref` (and nestjs/swagger's `allOf: [{$ref}]` wrapping), keeping outer descriptions. */
export function resolve(doc: OpenApiDocument, s: SchemaObject | undefined): SchemaObject {
  if (!s) return {};
  if (s.$ref) {
    const name = s.$ref.replace(/^#\/components\/schemas\//, '');
    const target = doc.components?.schemas?.[name];
    if (!target) throw new Error(`OpenAPI document: ${s.$ref} is not defined`);
    const { $ref: _ref, ...outer } = s;
    return { ...resolve(doc, target), ...outer };
  }
  if (s.allOf?.length === 1) {
    const { allOf, ...outer } = s;
    return { ...resolve(doc, allOf[0]), ...outer };
  }
  return s;
}

/** The JSON request body schema of `method path`. */
export function requestBody(doc: OpenApiDocument, path: string, method = 'post'): SchemaObject {
  const content = doc.paths[path]?.[method]?.requestBody?.content;
  const schema = content?.['application/json']?.schema ?? content?.['multipart/form-data']?.schema;
  if (!schema)
    throw new Error(`OpenAPI document: no request body for ${method.toUpperCase()} ${path}`);
  return resolve(doc, schema);
}

function bound(flag: boolean | number | undefined, plain: number | undefined) {
  // 3.1 puts the exclusive bound in exclusiveMinimum itself; 3.0 flags `minimum`.
  if (typeof flag === 'number') return { value: flag, exclusive: true };
  return { value: plain, exclusive: flag === true };
}

export function fieldOf(
  doc: OpenApiDocument,
  name: string,
  raw: SchemaObject,
  required: boolean,
): Field {
  const s = resolve(doc, raw);
  const common = { name, required, ...(s.description ? { description: s.description } : {}) };
  if (s.enum?.length)
    return {
      ...common,
      kind: 'choice',
      values: s.enum.map(String),
      ...(typeof s.default === 'string' ? { default: s.default } : {}),
    };
  // An object is known by its properties (a $ref'd class may come without `type: object`).
  if (s.properties && Object.keys(s.properties).length)
    return { ...common, kind: 'object', fields: fieldsOf(doc, s) };
  switch (s.type) {
    case 'integer':
    case 'number': {
      const lo = bound(s.exclusiveMinimum, s.minimum);
      const hi = bound(s.exclusiveMaximum, s.maximum);
      return {
        ...common,
        kind: s.type,
        ...(lo.value !== undefined ? { min: lo.value } : {}),
        ...(hi.value !== undefined ? { max: hi.value } : {}),
        exclusiveMin: lo.exclusive,
        exclusiveMax: hi.exclusive,
        ...(typeof s.default === 'number' ? { default: s.default } : {}),
      };
    }
    case 'boolean':
      return {
        ...common,
        kind: 'boolean',
        ...(typeof s.default === 'boolean' ? { default: s.default } : {}),
      };
    case 'object':
      return {
        ...common,
        kind: 'json',
        ...(s.example !== undefined ? { example: s.example } : {}),
      };
    default:
      return {
        ...common,
        kind: 'text',
        ...(typeof s.default === 'string' ? { default: s.default } : {}),
      };
  }
}

export function fieldsOf(doc: OpenApiDocument, s: SchemaObject): Field[] {
  const req = new Set(s.required ?? []);
  return Object.entries(s.properties ?? {}).map(([k, v]) => fieldOf(doc, k, v, req.has(k)));
}

/** "[1, 1000]", "(0, 1]", "≥ 0", or '' without bounds. */
export function rangeText(f: NumberField): string {
  if (f.min !== undefined && f.max !== undefined)
    return `${f.exclusiveMin ? '(' : '['}${f.min}, ${f.max}${f.exclusiveMax ? ')' : ']'}`;
  if (f.min !== undefined) return `${f.exclusiveMin ? '>' : '≥'} ${f.min}`;
  if (f.max !== undefined) return `${f.exclusiveMax ? '<' : '≤'} ${f.max}`;
  return '';
}

/** What is wrong with a number typed into `f` (null when valid), worded like the range. */
export function numberProblem(f: NumberField, v: number): string | null {
  const kind = f.kind === 'integer' ? 'an integer' : 'a number';
  const range = rangeText(f);
  const bad =
    !Number.isFinite(v) ||
    (f.kind === 'integer' && !Number.isInteger(v)) ||
    (f.min !== undefined && (f.exclusiveMin ? v <= f.min : v < f.min)) ||
    (f.max !== undefined && (f.exclusiveMax ? v >= f.max : v > f.max));
  const where = !range ? '' : /^[[(]/.test(range) ? ` in ${range}` : ` ${range}`;
  return bad ? `${f.name} must be ${kind}${where}` : null;
}

/** What the user typed, by field path ("hyperparameters.epochs"); only touched fields are present. */
export type Values = Record<string, string | boolean>;

/** The request body from the form values, or the problems found in it. */
export function buildBody(
  fields: Field[],
  values: Values,
  prefix = '',
): { body: Record<string, unknown>; problems: string[] } {
  const body: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const f of fields) {
    const path = prefix + f.name;
    if (f.kind === 'object') {
      const sub = buildBody(f.fields, values, `${path}.`);
      problems.push(...sub.problems);
      if (Object.keys(sub.body).length) body[f.name] = sub.body;
      continue;
    }
    const raw =
      values[path] ??
      (f.kind === 'json' && f.example !== undefined ? JSON.stringify(f.example) : undefined);
    if (raw === undefined || raw === '') {
      if (f.required) problems.push(`${path} is required`);
      continue;
    }
    if (f.kind === 'integer' || f.kind === 'number') {
      const n = Number(raw);
      const why = numberProblem(f, n);
      if (why) problems.push(why.replace(f.name, path));
      else body[f.name] = n;
    } else if (f.kind === 'json') {
      try {
        body[f.name] = JSON.parse(String(raw));
      } catch {
        problems.push(`${path} is not valid JSON`);
      }
    } else body[f.name] = raw;
  }
  return { body, problems };
}
