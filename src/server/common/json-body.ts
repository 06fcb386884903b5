/**
 * Guards of the JSON body parser (src/server/app.ts).
 *
 * A nesting cap for JSON bodies, checked on the raw bytes before parsing. V8's JSON.parse is
 * iterative and accepts 100,000 nested arrays, but everything after it that walks the value
 * recursively (class-transformer, class-validator, JSON.stringify in logs) overflows the stack,
 * which surfaced as a 500. No request shape of this API nests deeper than a few levels.
 */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = new Set([0x5b, 0x7b]); // [ {
const CLOSE = new Set([0x5d, 0x7d]); // ] }

/** The deepest nesting of arrays/objects in JSON text, stopping early once above `cap`. */
export function jsonDepth(buf: Uint8Array, cap = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (OPEN.has(c)) {
      if (++depth > max && (max = depth) > cap) return max;
    } else if (CLOSE.has(c)) depth--;
  }
  return max;
}

/** body-parser `verify`: a 400 INVALID_JSON (via the parse-failure type) when nested too deep. */
export function verifyJsonDepth(_req: unknown, _res: unknown, buf: Buffer): void {
  if (jsonDepth(buf, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
    throw Object.assign(new Error(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`), {
      status: 400,
      type: 'entity.parse.failed',
    });
}

/**
 * body-parser `reviver`: refuses `__proto__` and `constructor.prototype` keys (a 400 INVALID_JSON).
 * JSON.parse makes them harmless own properties, but class-transformer drops them silently, so
 * they slipped past the ValidationPipe's unknown-field check (a request with
 * `"__proto__": {...}` in `hyperparameters` queued a job) and any later merge into a plain object
 * would pollute its prototype.
 */
export function rejectPrototypeKeys(this: unknown, key: string, value: unknown): unknown {
  if (
    key === '__proto__' ||
    (key === 'constructor' && typeof value === 'object' && value !== null && 'prototype' in value)
  )
    throw Object.assign(new Error(`key "${key}" is not allowed`), { status: 400 });
  return value;
}
