/**
 * The op tables in README.md and docs/ops.md list exactly the ops with a VJP rule in the one
 * registry (src/engine/autodiff/rules.ts), so adding or removing a rule without the docs fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { vjpRules } from '../../src/engine/autodiff/rules';

const root = join(__dirname, '..', '..');
const read = (file: string) => readFileSync(join(root, file), 'utf8');

/** Rows of the first Markdown table after `heading`, as arrays of cell texts (header dropped). */
function tableRows(text: string, heading: string): string[][] {
  const start = text.indexOf(heading);
  if (start < 0) throw new Error(`heading ${heading} not found`);
  const lines = text.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const l of lines.slice(first + 2)) {
    if (!l.startsWith('|')) break;
    rows.push(
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** Op names in a cell: capitalised words, ignoring parenthesised remarks. */
function opNames(cell: string): string[] {
  return cell
    .replace(/\([^)]*\)/g, ' ')
    .split(/[\s,]+/)
    .filter((w) => /^[A-Z][A-Za-z]*$/.test(w));
}

const registry = Object.keys(vjpRules).sort();

describe('op tables match the VJP registry', () => {
  it('README lists every op that has a rule, and no other', () => {
    const rows = tableRows(read('README.md'), '## Supported ONNX ops');
    expect(rows.flatMap((r) => opNames(r[1])).sort()).toEqual(registry);
  });

  it('docs/ops.md has one row per op with a rule, and no other', () => {
    const rows = tableRows(read('docs/ops.md'), '| Op ');
    expect(rows.flatMap((r) => opNames(r[0])).sort()).toEqual(registry);
  });
});
