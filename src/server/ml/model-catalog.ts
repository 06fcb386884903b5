/**
 * The models under MODELS_DIR: what exists, not what is loaded. Every directory (at depth 1 or 2,
 * so both `models/<name>/` and `models/<name>/<version>/` layouts work) holding a valid
 * manifest.json whose files are present is a model `name@version`. Rescanned every
 * MODELS_RESCAN_MS and on demand, so versions written by a fine-tune (on this replica or another
 * sharing the volume) appear without a restart; listeners hear which ids came and went.
 */
import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ModelManifest } from '../../prg/manifest';
import { validateManifest } from '../../prg/model-dir/manifest-schema';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';

export interface ModelEntry {
  id: string;
  dir: string;
  manifest: ModelManifest;
}

export interface InvalidModelDir {
  dir: string;
  problems: string[];
}

export interface CatalogChange {
  added: ModelEntry[];
  /** Gone, or moved to another directory (then also in `added`). */
  removed: ModelEntry[];
}

/** Numeric-aware version order: 1.10 > 1.9, compared chunk by chunk. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

@Injectable()
export class ModelCatalog implements OnApplicationShutdown {
  private readonly logger = new Logger('ModelCatalog');
  private entries = new Map<string, ModelEntry>();
  private invalidDirs: InvalidModelDir[] = [];
  private timer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> | null = null;
  /** The one scan queued behind the running one, shared by every caller that asked meanwhile. */
  private queued: Promise<void> | null = null;
  private readonly listeners: ((c: CatalogChange) => void)[] = [];
  /** Problems already logged, so a bad directory is reported once, not every rescan. */
  private readonly reported = new Set<string>();

  constructor(@Inject(SERVER_CONFIG) private readonly config: ServerConfig) {}

  /** First scan, then periodic rescans (MODELS_RESCAN_MS > 0). */
  async start(): Promise<void> {
    await this.rescan();
    if (this.entries.size === 0)
      this.logger.warn(`no valid model under ${this.config.modelsDir}; /health/ready stays 503`);
    if (this.config.rescanMs > 0) {
      this.timer = setInterval(() => {
        this.rescan().catch((e) => this.logger.error(`rescan failed: ${(e as Error).message}`));
      }, this.config.rescanMs);
      this.timer.unref();
    }
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  onChange(listener: (c: CatalogChange) => void): void {
    this.listeners.push(listener);
  }

  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  get invalid(): readonly InvalidModelDir[] {
    return this.invalidDirs;
  }

  get size(): number {
    return this.entries.size;
  }

  /** "name@version" exactly, or "name" for its latest version. */
  find(ref: string): ModelEntry | undefined {
    const exact = this.entries.get(ref);
    if (exact || ref.includes('@')) return exact;
    return [...this.entries.values()]
      .filter((e) => e.manifest.name === ref)
      .sort((a, b) => compareVersions(b.manifest.version, a.manifest.version))[0];
  }

  /**
   * Rescans MODELS_DIR and resolves once a scan that *started after this call* has finished. A
   * caller that just renamed a model directory into place must not get the running scan's
   * promise: that scan may have listed the directory before the rename. So a call during a scan
   * queues one more scan after it; every call made meanwhile shares that queued scan.
   */
  rescan(): Promise<void> {
    if (!this.scanning) {
      this.scanning = this.scan().finally(() => (this.scanning = null));
      return this.scanning;
    }
    this.queued ??= this.scanning
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.rescan();
      });
    return this.queued;
  }

  private async scan(): Promise<void> {
    const found = new Map<string, ModelEntry>();
    const invalid: InvalidModelDir[] = [];
    const visit = async (dir: string, depth: number): Promise<void> => {
      const text = await fs.readFile(path.join(dir, 'manifest.json'), 'utf8').catch(() => null);
      if (text !== null) {
        const checked = await checkModelDir(dir, text);
        if (checked.ok) {
          const m = checked.manifest;
          const id = `${m.name}@${m.version}`;
          const dup = found.get(id);
          if (dup) invalid.push({ dir, problems: [`duplicate id ${id} (also in ${dup.dir})`] });
          else found.set(id, { id, dir, manifest: m });
        } else invalid.push({ dir, problems: checked.problems });
        return;
      }
      if (depth >= 2) return;
      let names: string[];
      try {
        names = (await fs.readdir(dir, { withFileTypes: true }))
          .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
          .map((d) => d.name)
          .sort();
      } catch {
        return;
      }
      for (const n of names) await visit(path.join(dir, n), depth + 1);
    };
    await visit(this.config.modelsDir, 0);

    for (const bad of invalid) {
      const key = `${bad.dir}:${bad.problems.join('|')}`;
      if (!this.reported.has(key)) {
        this.reported.add(key);
        this.logger.warn(`skipping ${bad.dir}: ${bad.problems.join('; ')}`);
      }
    }
    const moved = (e: ModelEntry) => found.get(e.id)?.dir !== e.dir;
    const removed = [...this.entries.values()].filter(moved);
    const added = [...found.values()].filter((e) => this.entries.get(e.id)?.dir !== e.dir);
    for (const e of removed) this.logger.log(`model ${e.id} removed`);
    for (const e of added) this.logger.log(`model ${e.id} at ${e.dir}`);
    this.entries = found;
    this.invalidDirs = invalid;
    if (added.length || removed.length) for (const l of this.listeners) l({ added, removed });
  }
}

/** A manifest that parses and validates, and whose files sit inside the directory. */
async function checkModelDir(
  dir: string,
  text: string,
): Promise<{ ok: true; manifest: ModelManifest } | { ok: false; problems: string[] }> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, problems: [`manifest.json is not JSON: ${(e as Error).message}`] };
  }
  let m: ModelManifest;
  try {
    m = validateManifest(json);
  } catch (e) {
    return { ok: false, problems: [(e as Error).message] };
  }
  const missing: string[] = [];
  // Every file the manifest names, the velocity net's external data included.
  for (const f of Object.values(m.files).filter((f): f is string => typeof f === 'string')) {
    const p = path.resolve(dir, f);
    if (!p.startsWith(path.resolve(dir) + path.sep))
      missing.push(`file ${f} escapes the model directory`);
    else await fs.access(p).catch(() => missing.push(`file ${f} missing`));
  }
  return missing.length ? { ok: false, problems: missing } : { ok: true, manifest: m };
}
