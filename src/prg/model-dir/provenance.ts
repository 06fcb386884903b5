/**
 * Provenance recorded in a model's manifest: the git commit and the command line that made it, so
 * every model can be traced to the code and rerun from the repo root.
 */
import { execFileSync } from 'node:child_process';
import { basename, resolve } from 'node:path';
import { ModelManifest } from '../manifest';

let cachedCommit: string | undefined;

/** HEAD of the repository this code runs from, or "unknown" outside git (cached per process). */
export function gitCommit(): string {
  if (cachedCommit !== undefined) return cachedCommit;
  const cwd = resolve(__dirname, '..', '..', '..');
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: 'pipe' })
      .toString()
      .trim();
    cachedCommit = head || 'unknown';
  } catch {
    cachedCommit = 'unknown';
  }
  return cachedCommit;
}

/** The command line that produced a model, rerunnable from the repo root. */
export function commandLine(argv: readonly string[] = process.argv): string {
  const args = argv.slice(2).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)));
  const script = argv[1] ?? '';
  const cmd = /(?:^|\/)(?:bin\/prg(?:\.js)?|dist\/src\/cli\/main\.js)$/.test(script)
    ? 'prg'
    : basename(script || 'node');
  return [cmd, ...args].join(' ');
}

export function provenance(
  dataset: string,
  extra: Record<string, unknown> = {},
): ModelManifest['provenance'] {
  return { dataset, command: commandLine(), gitCommit: gitCommit(), ...extra };
}
