/**
 * Models held in memory, at most `max` at once (MAX_LOADED_MODELS): a model is loaded on first use
 * (concurrent first uses share one load) and the least recently used one is released when a new
 * one would exceed the cap, so a volume with many fine-tuned versions cannot exhaust memory. A
 * failed load is forgotten (the next use retries: the files may have been mid-copy) and its error
 * kept for /models and readiness. Released models are let go after a grace period, so requests
 * already running on them finish.
 */
import { Logger } from '@nestjs/common';
import { PrgModelApi } from '../../prg/inference-api';
import type { ModelEntry } from './model-catalog';

const RELEASE_GRACE_MS = 30_000;

export class LoadedModels {
  private readonly logger = new Logger('LoadedModels');
  /** Insertion order is recency order: a use moves the model to the end. */
  private readonly models = new Map<string, Promise<PrgModelApi>>();
  private readonly errors = new Map<string, string>();

  constructor(
    private readonly load: (entry: ModelEntry) => Promise<PrgModelApi>,
    private readonly max: number,
  ) {}

  isLoaded(id: string): boolean {
    return this.models.has(id) && !this.errors.has(id);
  }

  loadError(id: string): string | undefined {
    return this.errors.get(id);
  }

  get ids(): string[] {
    return [...this.models.keys()];
  }

  /** The loaded model (loading it, and evicting the least recently used past the cap). */
  get(entry: ModelEntry): Promise<PrgModelApi> {
    const id = entry.id;
    let p = this.models.get(id);
    if (p) {
      this.models.delete(id);
      this.models.set(id, p);
      return p;
    }
    const started = Date.now();
    p = this.load(entry);
    this.models.set(id, p);
    const mine = p;
    p.then(
      () => {
        this.errors.delete(id);
        this.logger.log(`loaded ${id} in ${Date.now() - started} ms`);
      },
      (e: Error) => {
        if (this.models.get(id) === mine) this.models.delete(id);
        this.errors.set(id, e.message);
        this.logger.error(`loading ${id} from ${entry.dir} failed: ${e.message}`);
      },
    );
    while (this.models.size > this.max) {
      const oldest = this.models.keys().next().value as string;
      this.logger.log(
        `releasing ${oldest}: more than ${this.max} models loaded (MAX_LOADED_MODELS)`,
      );
      this.release(oldest, RELEASE_GRACE_MS);
    }
    return p;
  }

  /** Forget a model (gone from disk, or evicted); its sessions go after `graceMs`. */
  release(id: string, graceMs = RELEASE_GRACE_MS): void {
    const p = this.models.get(id);
    this.models.delete(id);
    this.errors.delete(id);
    p?.then((m) => setTimeout(() => void m.release(), graceMs).unref()).catch(() => {});
  }

  /** Release everything now (shutdown). */
  async close(): Promise<void> {
    const all = [...this.models.values()];
    this.models.clear();
    await Promise.allSettled(all.map(async (p) => (await p).release()));
  }
}
