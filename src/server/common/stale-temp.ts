/**
 * Temp files and dirs left by a process killed mid-write (SIGKILL, OOM kill, power loss). Each
 * carries its owner, `<host>.<pid>`, at the end of its name (withOwner) or in an `owner` file inside it, so a process
 * starting up can remove at once what a dead process on its own host left, without touching what
 * another live replica sharing the volume is writing right now. What cannot be attributed (another
 * host, no owner) is removed only once it is older than `maxAgeMs`.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Owner tag of this process: host name (letters, digits, "-" only) and pid. */
export function ownerTag(): string {
  return `${os.hostname().replace(/[^A-Za-z0-9-]/g, '-')}.${process.pid}`;
}

const OWNER_RE = /^([A-Za-z0-9-]+)\.(\d+)$/;

/** `name` with this process's owner tag appended (`.tmp-ds_1a2b~host.42`). */
export const withOwner = (name: string): string => `${name}~${ownerTag()}`;

/** Whether the process that wrote `owner` (`host.pid`) is gone for sure. */
export function ownerIsDead(owner: string | null): boolean {
  const m = owner === null ? null : OWNER_RE.exec(owner);
  if (!m || m[1] !== ownerTag().replace(/\.\d+$/, '')) return false; // another host: cannot tell
  const pid = Number(m[2]);
  // Starting up, this process has written nothing yet: its own pid on a tag is a previous
  // process's (containers restart with the same pid, typically 1).
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export interface StaleTempOptions {
  /** Which entries of `dir` are temp entries. */
  match: (name: string) => boolean;
  /** The owner tag of an entry (from its name or a file inside it); null when unknown. */
  owner: (name: string, fullPath: string) => Promise<string | null>;
  /** Entries older than this are removed whoever wrote them. */
  maxAgeMs: number;
}

/** Removes the stale temp entries of `dir`; returns their names. */
export async function removeStaleTemp(dir: string, o: StaleTempOptions): Promise<string[]> {
  const removed: string[] = [];
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const cutoff = Date.now() - o.maxAgeMs;
  for (const name of names) {
    if (!o.match(name)) continue;
    const p = path.join(dir, name);
    const st = await fs.stat(p).catch(() => null);
    if (!st) continue;
    if (st.mtimeMs < cutoff || ownerIsDead(await o.owner(name, p))) {
      await fs.rm(p, { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** The owner tag carried in a name made by withOwner. */
export const ownerInName = async (name: string): Promise<string | null> =>
  /~([A-Za-z0-9-]+\.\d+)$/.exec(name)?.[1] ?? null;

/** The owner tag in `<dir>/owner` (written by writeOwnerFile). */
export const ownerInFile = async (_name: string, dir: string): Promise<string | null> =>
  fs.readFile(path.join(dir, 'owner'), 'utf8').then(
    (t) => t.trim(),
    () => null,
  );

export async function writeOwnerFile(dir: string): Promise<void> {
  await fs.writeFile(path.join(dir, 'owner'), ownerTag());
}
