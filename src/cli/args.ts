/**
 * Argument parsing for the `prg` command: node's util.parseArgs (strict), plus typed getters
 * that turn a bad value into a UsageError naming the flag (exit code 2).
 */
import { parseArgs, ParseArgsConfig } from 'node:util';
import { POOL_NONE } from '../prg/heads/pool';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export function parse(argv: string[], options: OptionSpec, command: string): Values {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length)
      throw new UsageError(`prg ${command}: unexpected argument ${String(positionals[0])}`);
    return values as Values;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    // parseArgs errors (ERR_PARSE_ARGS_UNKNOWN_OPTION, ...) are usage errors.
    throw new UsageError(`prg ${command}: ${(e as Error).message}`);
  }
}

export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === 'string' ? x : undefined;
}

export function required(v: Values, name: string, command: string): string {
  const x = str(v, name);
  if (x === undefined || x === '') throw new UsageError(`prg ${command}: --${name} is required`);
  return x;
}

export function num(
  v: Values,
  name: string,
  o: { int?: boolean; min?: number; max?: number; exclusiveMin?: boolean } = {},
): number | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const n = Number(x);
  const what = o.int ? 'an integer' : 'a number';
  if (x.trim() === '' || !Number.isFinite(n) || (o.int && !Number.isInteger(n)))
    throw new UsageError(`--${name}=${x}: expected ${what}`);
  if (o.min !== undefined && (o.exclusiveMin ? n <= o.min : n < o.min))
    throw new UsageError(`--${name}=${x}: must be ${o.exclusiveMin ? '>' : '>='} ${o.min}`);
  if (o.max !== undefined && n > o.max) throw new UsageError(`--${name}=${x}: must be <= ${o.max}`);
  return n;
}

export function choice<T extends string>(
  v: Values,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  if (!allowed.includes(x as T))
    throw new UsageError(`--${name}=${x}: use one of ${allowed.join(', ')}`);
  return x as T;
}

/** `--pool none|N` */
export function pool(v: Values, name: string): number | null | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  if (x === POOL_NONE || x === 'null') return null;
  return num(v, name, { int: true, min: 1 });
}

export function flag(v: Values, name: string): boolean {
  return v[name] === true;
}
