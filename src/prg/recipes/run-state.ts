/**
 * The bookkeeping that recipes (run.ts), ablations (ablate.ts) and their shared units (units.ts)
 * have in common: JSON files written atomically, time spent per stage summed over runs, and the
 * state file that makes a run resumable.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../engine/runtime/checkpoint';

export const STATE_FILE = 'state.json';

/** Time spent on a stage or unit, summed over the runs that worked on it. */
export interface TimeSpent {
  /** Process CPU (every thread, ONNX Runtime's included). */
  cpuSeconds: number;
  wallSeconds: number;
  /** Runs that worked on it (more than one when it was resumed). */
  runs: number;
}

export async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Atomic (temp file + rename): a stop mid-write leaves the previous state, never half of one. */
export const writeJson = (file: string, v: unknown) =>
  writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n'));

/** CPU seconds of this process so far (every thread, ONNX Runtime's included). */
export const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Starts a clock on `rec`; the returned function adds the time since to it and counts one run. */
export function startClock(rec: TimeSpent): () => void {
  const cpu0 = cpuNow();
  const wall0 = Date.now();
  return () => {
    rec.cpuSeconds += cpuNow() - cpu0;
    rec.wallSeconds += (Date.now() - wall0) / 1000;
    rec.runs++;
  };
}

interface RunStateHeader {
  recipe: string;
  version: number;
}

/**
 * The state of a run of `recipe` in `dir`: a fresh one, or the stored one when resuming. Refuses to
 * overwrite a stored state without `resume`, and to resume another recipe's or version's run.
 */
export async function openRunState<S extends RunStateHeader>(
  dir: string,
  recipe: { name: string; version: number },
  resume: boolean | undefined,
  fresh: () => S,
): Promise<{ state: S; file: string }> {
  const file = join(dir, STATE_FILE);
  const prev = await readJson<S>(file);
  if (prev && !resume)
    throw new Error(`${file} exists: pass resume (--resume) to continue that run`);
  if (prev && (prev.recipe !== recipe.name || prev.version !== recipe.version))
    throw new Error(
      `${dir} holds recipe ${prev.recipe} v${prev.version}, not ${recipe.name} v${recipe.version}; ` +
        'use another directory',
    );
  return { state: prev ?? fresh(), file };
}
