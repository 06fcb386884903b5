import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STATE_FILE, TimeSpent, openRunState, readJson, startClock, writeJson } from './run-state';

const tmp = () => fs.mkdtemp(join(os.tmpdir(), 'run-state-'));
const fresh = () => ({ recipe: 'tiny', version: 2, stages: {} as Record<string, number> });

describe('run state', () => {
  it('starts fresh, resumes its own run, refuses without resume and refuses another recipe', async () => {
    const dir = await tmp();
    const a = await openRunState(dir, { name: 'tiny', version: 2 }, false, fresh);
    expect(a.file).toBe(join(dir, STATE_FILE));
    a.state.stages.pretrain = 1;
    await writeJson(a.file, a.state);

    const b = await openRunState(dir, { name: 'tiny', version: 2 }, true, fresh);
    expect(b.state.stages).toEqual({ pretrain: 1 });
    await expect(openRunState(dir, { name: 'tiny', version: 2 }, false, fresh)).rejects.toThrow(
      /state\.json exists: pass resume/,
    );
    await expect(openRunState(dir, { name: 'tiny', version: 3 }, true, fresh)).rejects.toThrow(
      /holds recipe tiny v2, not tiny v3/,
    );
    await expect(openRunState(dir, { name: 'mnist', version: 2 }, true, fresh)).rejects.toThrow(
      /holds recipe tiny v2, not mnist v2/,
    );
  });

  it('reads a missing file as null but a corrupt one as an error', async () => {
    const dir = await tmp();
    expect(await readJson(join(dir, 'none.json'))).toBeNull();
    await fs.writeFile(join(dir, 'bad.json'), '{"half":');
    await expect(readJson(join(dir, 'bad.json'))).rejects.toThrow();
  });

  it('adds the time of each run and counts the runs', async () => {
    const rec: TimeSpent = { cpuSeconds: 1, wallSeconds: 2, runs: 1 };
    const stop = startClock(rec);
    const until = Date.now() + 30;
    while (Date.now() < until); // burn a little CPU so the clock has something to add
    stop();
    expect(rec.runs).toBe(2);
    expect(rec.cpuSeconds).toBeGreaterThan(1);
    expect(rec.wallSeconds).toBeGreaterThanOrEqual(2.03);
  });
});
