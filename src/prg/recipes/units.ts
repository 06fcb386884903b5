/**
 * Units of work shared by ablation recipes (ablate.ts): a pretrain, a fine-tuning candidate or a
 * test evaluation, stored in a directory named by a label and a hash of every setting that shapes
 * its result (the data, the net, the hyperparameters, the seed and the unit it starts from):
 *
 *   <units>/<label>-<hash>/unit.json   settings, done, CPU and wall seconds, runs, result
 *   <units>/<label>-<hash>/model/      the trained model (pretrain, fine-tune)
 *   <units>/<label>-<hash>/ckpt/       its checkpoint while in progress (removed when done)
 *   <units>/<label>-<hash>/.lock       the process working on it
 *
 * Identical settings give identical results (seeded batches, noise and initialisation), so a unit
 * done once is reused by every variant and recipe that asks for it, and a unit stopped half-way is
 * continued from its checkpoint by whichever run asks next. The lock refuses a second process
 * working on the same unit at the same time.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { TrainingAborted } from '../training/common';
import { TimeSpent, readJson, startClock, writeJson } from './run-state';

export const UNIT_FILE = 'unit.json';
/** A unit's checkpoint directory while it is in progress. */
export const UNIT_CHECKPOINT_DIR = 'ckpt';

export interface UnitRecord extends TimeSpent {
  label: string;
  settings: unknown;
  done: boolean;
  result?: Record<string, unknown>;
}

/** JSON with object keys sorted, so equal settings hash equally whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v ?? null);
}

export function unitId(label: string, settings: unknown): string {
  const h = createHash('sha256').update(canonicalJson(settings)).digest('hex').slice(0, 12);
  return `${label}-${h}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface UnitRun {
  id: string;
  dir: string;
  record: UnitRecord;
  /** Done before this call (by another variant, recipe or run): no work was done now. */
  reused: boolean;
}

export class UnitStore {
  constructor(readonly dir: string) {}

  dirOf(id: string): string {
    return join(this.dir, id);
  }

  async record(id: string): Promise<UnitRecord | null> {
    return readJson<UnitRecord>(join(this.dirOf(id), UNIT_FILE));
  }

  /**
   * The unit for (label, settings): its record when done, else `work(dir)` run under the lock.
   * A stop (TrainingAborted) records the time spent and rethrows; other errors record nothing.
   */
  async run(
    label: string,
    settings: unknown,
    work: (dir: string) => Promise<Record<string, unknown>>,
  ): Promise<UnitRun> {
    const id = unitId(label, settings);
    const dir = this.dirOf(id);
    await fs.mkdir(dir, { recursive: true });
    const file = join(dir, UNIT_FILE);
    const prev = await readJson<UnitRecord>(file);
    if (prev?.done) return { id, dir, record: prev, reused: true };
    const rec: UnitRecord = prev ?? {
      label,
      settings,
      done: false,
      cpuSeconds: 0,
      wallSeconds: 0,
      runs: 0,
    };
    const lock = join(dir, '.lock');
    await this.acquire(lock, dir);
    const stop = startClock(rec);
    const spent = async () => {
      stop();
      await writeJson(file, rec);
    };
    try {
      rec.result = await work(dir);
      rec.done = true;
      await spent();
      // A finished unit's checkpoint is never read again (a done unit is reused, not resumed);
      // kept, it would only add ~10 MB per unit to the run state that gets committed.
      await fs.rm(join(dir, UNIT_CHECKPOINT_DIR), { recursive: true, force: true });
    } catch (e) {
      if (e instanceof TrainingAborted) await spent();
      throw e;
    } finally {
      await fs.rm(lock, { force: true });
    }
    return { id, dir, record: rec, reused: false };
  }

  private async acquire(lock: string, dir: string): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.writeFile(lock, `${process.pid}\n`, { flag: 'wx' });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = Number((await fs.readFile(lock, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid))
        throw new Error(`${dir} is being trained by process ${pid}; run one ablation at a time`);
      // The process that held it is gone (killed): take the unit over.
      await fs.rm(lock, { force: true });
    }
    throw new Error(`${dir}: could not take its lock`);
  }
}
