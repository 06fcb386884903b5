import { describe, expect, it } from 'vitest';
import { commandLine, gitCommit, provenance } from './provenance';

describe('provenance', () => {
  it('records the command line as `prg …`, quoting only what a shell needs quoted', () => {
    expect(commandLine(['node', '/repo/bin/prg', 'train', '--name', 'a b', '--lr=1e-3'])).toBe(
      'prg train --name "a b" --lr=1e-3',
    );
    expect(commandLine(['node', '/repo/dist/src/cli/main.js', 'ood-fit'])).toBe('prg ood-fit');
    expect(commandLine(['node', '/repo/scripts/other.js', 'x'])).toBe('other.js x');
  });

  it('names the git commit this code runs from and keeps extra fields', () => {
    expect(gitCommit()).toMatch(/^([0-9a-f]{40}|unknown)$/);
    const p = provenance('mnist:train', { parent: 'models/a' });
    expect(p).toMatchObject({ dataset: 'mnist:train', gitCommit: gitCommit(), parent: 'models/a' });
  });
});
