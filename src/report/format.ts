/** Markdown formatting shared by the report's sections. */
import { strOr } from './inputs';

export const NOT_RUN = 'not run yet';

/** A fraction as a percentage with `digits` decimals; "—" for a missing number. */
export const pct = (x: number | null, digits = 2) => (x === null ? '—' : (100 * x).toFixed(digits));
export const fmt = (x: number | null, digits = 4) => (x === null ? '—' : x.toFixed(digits));
/** A commit as its first 10 characters. */
export const short = (c: unknown) => strOr(c, 'unknown').slice(0, 10);
/** A file-name-safe form of a recipe or model name. */
export const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-|-$/g, '');

export function table(head: string[], rows: (string | number)[][]): string {
  const line = (r: (string | number)[]) =>
    `| ${r.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}
