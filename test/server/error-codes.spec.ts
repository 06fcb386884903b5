/**
 * Every error code the server can answer is documented in the README's error table. Codes are
 * collected from the source: the ErrorCode and DatasetErrorCode unions, the filter's status maps,
 * and every `badRequest('…')`, `new ApiError(status, '…')`, `new DatasetError(status, '…')` and
 * `new InputError('…')` call.
 */
import { readdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'testing') out.push(...(await sources(p)));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts')) out.push(p);
  }
  return out;
}

const CALLS = [
  /badRequest\(\s*'([A-Z][A-Z0-9_]+)'/g,
  /new (?:ApiError|DatasetError)\(\s*[^,]+,\s*'([A-Z][A-Z0-9_]+)'/g,
  /new InputError\(\s*'([A-Z][A-Z0-9_]+)'/g,
  /code: '([A-Z][A-Z0-9_]+)'/g,
];

/** String members of a `type X = | 'A' | 'B'` union. */
function unionMembers(src: string, name: string): string[] {
  const m = new RegExp(`type ${name} =([^;]+);`).exec(src);
  return m ? [...m[1].matchAll(/'([A-Z][A-Z0-9_]+)'/g)].map((x) => x[1]) : [];
}

/** Values of a `const X: Record<…, ErrorCode> = { … }` map. */
function mapValues(src: string, name: string): string[] {
  const m = new RegExp(`const ${name}[^=]*= \\{([^}]+)\\}`).exec(src);
  return m ? [...m[1].matchAll(/:\s*'([A-Z][A-Z0-9_]+)'/g)].map((x) => x[1]) : [];
}

describe('error codes', () => {
  it("every code the server can answer is in the README's error table", async () => {
    const codes = new Set<string>();
    for (const f of [
      ...(await sources(path.join(ROOT, 'src/server'))),
      ...(await sources(path.join(ROOT, 'src/prg'))),
    ]) {
      const src = await readFile(f, 'utf8');
      for (const re of CALLS) for (const m of src.matchAll(re)) codes.add(m[1]);
      for (const u of ['ErrorCode', 'DatasetErrorCode'])
        for (const c of unionMembers(src, u)) codes.add(c);
      for (const n of ['STATUS_CODES', 'BODY_PARSER_CODES'])
        for (const c of mapValues(src, n)) codes.add(c);
    }
    expect(codes.size).toBeGreaterThan(40);
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const table = readme
      .split('\n')
      .filter((l) => l.startsWith('|'))
      .join('\n');
    const missing = [...codes].filter((c) => !table.includes(`\`${c}\``)).sort();
    expect(missing).toEqual([]);
  });
});
