/**
 * The models under MODELS_DIR. Every directory (at depth 1 or 2, so both `models/<name>/` and
 * `models/<name>/<version>/` layouts work) holding a valid manifest.json is a model
 * `name@version`. The directory is rescanned every MODELS_RESCAN_MS and on demand, so versions
 * written by a fine-tune (on this replica or another sharing the volume) appear without restart.
 * A model is loaded once (concurrent first uses share one load) and released when its directory
 * disappears or the server shuts down.
 */
import {
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PrgModelApi } from '../../prg/inference-api';
import { ModelManifest } from '../../prg/manifest';
import { validateManifest } from '../../prg/model-dir/manifest-schema';
import { ApiError } from '../common/errors';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { MODEL_LOADER, ModelLoader } from './model-loader';

export interface ModelEntry {
  id: string;
  dir: string;
  manifest: ModelManifest;
}

export interface InvalidModelDir {
  dir: string;
  problems: string[];
}

/** Numeric-aware version order: 1.10 > 1.9, "2" > "10-rc"? compares chunk by chunk. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The model `npm start` serves by default from the repository's ./models. */
export const SHIPPED_DEFAULT_MODEL = 'prg-mnist';

@Injectable()
export class ModelRegistry implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('ModelRegistry');
  private entries = new Map<string, ModelEntry>();
  private invalidDirs: InvalidModelDir[] = [];
  private readonly loaded = new Map<string, Promise<PrgModelApi>>();
  private readonly loadErrors = new Map<string, string>();
  private defaultId: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> | null = null;
  private warmedUp = false;
  /** Per model: the batch size with the lowest time per image, measured at warm-up. */
  private readonly runSizes = new Map<string, number>();
  /** Problems already logged, so a bad directory is reported once, not every rescan. */
  private readonly reported = new Set<string>();

  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(MODEL_LOADER) private readonly loader: ModelLoader,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.rescan();
    if (this.entries.size === 0)
      this.logger.warn(`no valid model under ${this.config.modelsDir}; /health/ready stays 503`);
    if (this.config.warmup) await this.warmUp();
    else this.warmedUp = true;
    if (this.config.rescanMs > 0) {
      this.timer = setInterval(() => {
        this.rescan().catch((e) => this.logger.error(`rescan failed: ${(e as Error).message}`));
      }, this.config.rescanMs);
      this.timer.unref();
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.allSettled(all.map(async (p) => (await p).release()));
  }

  /** Warm up every model found (at start). */
  async warmUp(): Promise<void> {
    for (const e of this.entries.values()) await this.warmOne(e);
    this.warmedUp = true;
  }

  /**
   * Load a model and classify blank batches at each power-of-two size up to MAX_BATCH: the model
   * builds one graph + ORT session per batch size, and that cost belongs here, not in the first
   * requests. Each size is timed (best of several runs) and the size with the lowest time per image becomes
   * the model's run size (RUN_BATCH=0): larger coalesced batches run in chunks of it, because
   * past some size a bigger batch costs more per image (activations fall out of cache).
   */
  private async warmOne(e: ModelEntry): Promise<void> {
    const sizes: number[] = [];
    for (let n = 1; n < this.config.maxBatch; n *= 2) sizes.push(n);
    sizes.push(this.config.maxBatch);
    try {
      const started = Date.now();
      const m = await this.get(e.id);
      const { channels, height, width } = e.manifest.input;
      // Time what a served classify runs: the logits and the model's primary OOD score.
      const served = e.manifest.ood ? { ood: [e.manifest.ood.primary] } : {};
      const perImage: Record<number, number> = {};
      for (const n of sizes) {
        const batch = { data: new Float32Array(n * channels * height * width), n };
        await m.classify(batch, served);
        if (e.manifest.ood) await m.oodScores(batch);
        // Best of several runs covering ≥ 64 images: on a shared machine single runs are noisy.
        let best = Infinity;
        for (let r = 0; r < Math.max(3, Math.ceil(64 / n)); r++) {
          const t0 = performance.now();
          await m.classify(batch, served);
          best = Math.min(best, performance.now() - t0);
        }
        perImage[n] = best / n;
      }
      const tuned = sizes.reduce((a, b) => (perImage[b] < perImage[a] ? b : a));
      this.runSizes.set(e.id, tuned);
      this.logger.log(
        `warmed up ${e.id} in ${Date.now() - started} ms; ms/image by batch: ` +
          sizes.map((n) => `${n}:${perImage[n].toFixed(2)}`).join(' ') +
          ` → run size ${this.config.runBatch || tuned}`,
      );
    } catch (err) {
      this.logger.error(`warm-up of ${e.id} failed: ${(err as Error).message}`);
    }
  }

  /** Largest batch to hand the model in one call: RUN_BATCH, else the warm-up's best, else MAX_BATCH. */
  runSize(id: string): number {
    return this.config.runBatch || this.runSizes.get(id) || this.config.maxBatch;
  }

  /** Rescans MODELS_DIR; concurrent calls share one scan. */
  rescan(): Promise<void> {
    this.scanning ??= this.scan().finally(() => (this.scanning = null));
    return this.scanning;
  }

  private async scan(): Promise<void> {
    const found = new Map<string, ModelEntry>();
    const invalid: InvalidModelDir[] = [];
    const visit = async (dir: string, depth: number): Promise<void> => {
      const text = await fs.readFile(path.join(dir, 'manifest.json'), 'utf8').catch(() => null);
      if (text !== null) {
        const problems = await this.check(dir, text);
        if (problems.ok) {
          const m = problems.manifest;
          const id = `${m.name}@${m.version}`;
          const dup = found.get(id);
          if (dup) invalid.push({ dir, problems: [`duplicate id ${id} (also in ${dup.dir})`] });
          else found.set(id, { id, dir, manifest: m });
        } else invalid.push({ dir, problems: problems.problems });
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
    const added = [...found.keys()].filter((id) => !this.entries.has(id));
    for (const id of added) this.logger.log(`model ${id} at ${found.get(id)!.dir}`);
    for (const [id, e] of this.entries) {
      if (found.has(id) && found.get(id)!.dir === e.dir) continue;
      // Gone (or moved): release its sessions once in-flight work holding them has finished.
      const p = this.loaded.get(id);
      this.loaded.delete(id);
      this.loadErrors.delete(id);
      if (p) p.then((m) => setTimeout(() => void m.release(), 30_000).unref()).catch(() => {});
      this.logger.log(`model ${id} removed`);
    }
    this.entries = found;
    this.invalidDirs = invalid;
    this.defaultId = this.pickDefault();
    // Versions that appear later (fine-tunes) are warmed up in the background.
    if (this.warmedUp && this.config.warmup)
      for (const id of added) void this.warmOne(found.get(id)!);
  }

  private async check(
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
    for (const f of [m.files.velocity, m.files.head, ...(m.files.ood ? [m.files.ood] : [])]) {
      const p = path.resolve(dir, f);
      if (!p.startsWith(path.resolve(dir) + path.sep))
        missing.push(`file ${f} escapes the model directory`);
      else await fs.access(p).catch(() => missing.push(`file ${f} missing`));
    }
    return missing.length ? { ok: false, problems: missing } : { ok: true, manifest: m };
  }

  /**
   * DEFAULT_MODEL ("name" = its latest version, or "name@version"); otherwise the repository's
   * default model `prg-mnist` when present (./models ships more than one model, and a shipped model
   * may itself be fine-tuned from an earlier version, so no rule on the manifests alone picks it);
   * otherwise the first base model (no provenance.parent) in id order, else the first model.
   */
  private pickDefault(): string | null {
    const want = this.config.defaultModel;
    if (want) {
      const e = this.find(want);
      if (!e) {
        this.logger.warn(`DEFAULT_MODEL ${want} not found under ${this.config.modelsDir}`);
        return null;
      }
      return e.id;
    }
    const shipped = this.find(SHIPPED_DEFAULT_MODEL);
    if (shipped) return shipped.id;
    const ids = [...this.entries.keys()].sort();
    return ids.find((id) => !this.entries.get(id)!.manifest.provenance?.parent) ?? ids[0] ?? null;
  }

  private find(ref: string): ModelEntry | undefined {
    const exact = this.entries.get(ref);
    if (exact || ref.includes('@')) return exact;
    return [...this.entries.values()]
      .filter((e) => e.manifest.name === ref)
      .sort((a, b) => compareVersions(b.manifest.version, a.manifest.version))[0];
  }

  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  get invalid(): readonly InvalidModelDir[] {
    return this.invalidDirs;
  }

  get defaultModelId(): string | null {
    return this.defaultId;
  }

  get ready(): boolean {
    return this.warmedUp && this.entries.size > 0;
  }

  isLoaded(id: string): boolean {
    return this.loaded.has(id) && !this.loadErrors.has(id);
  }

  loadError(id: string): string | undefined {
    return this.loadErrors.get(id);
  }

  /**
   * The entry for `ref` ("name@version", "name" = latest version, undefined = default model).
   * Unknown: rescans once (a version may have just been written), then 404 listing what exists.
   */
  async resolve(ref?: string | null): Promise<ModelEntry> {
    const pick = () =>
      ref ? this.find(ref) : this.defaultId ? this.entries.get(this.defaultId) : undefined;
    let e = pick();
    if (!e) {
      await this.rescan();
      e = pick();
    }
    if (e) return e;
    if (this.entries.size === 0)
      throw new ApiError(
        HttpStatus.SERVICE_UNAVAILABLE,
        'NO_MODELS',
        `no model is installed under MODELS_DIR`,
      );
    if (!ref)
      throw new ApiError(HttpStatus.NOT_FOUND, 'MODEL_NOT_FOUND', 'no default model; pass "model"');
    throw new ApiError(
      HttpStatus.NOT_FOUND,
      'MODEL_NOT_FOUND',
      `unknown model "${ref}"; available: ${this.list()
        .map((x) => x.id)
        .join(', ')}`,
    );
  }

  /** The loaded model (loads it on first use; one load shared by concurrent callers). */
  async get(id: string): Promise<PrgModelApi> {
    const entry = this.entries.get(id);
    if (!entry) return this.get((await this.resolve(id)).id);
    let p = this.loaded.get(id);
    if (!p) {
      const started = Date.now();
      p = this.loader(entry.dir, { device: this.config.device, threads: this.config.threads });
      this.loaded.set(id, p);
      p.then(
        () => {
          this.loadErrors.delete(id);
          this.logger.log(`loaded ${id} in ${Date.now() - started} ms`);
        },
        (e: Error) => {
          // Forget the failed load so the next request retries (the files may be mid-copy).
          if (this.loaded.get(id) === p) this.loaded.delete(id);
          this.loadErrors.set(id, e.message);
          this.logger.error(`loading ${id} from ${entry.dir} failed: ${e.message}`);
        },
      );
    }
    try {
      return await p;
    } catch (e) {
      throw new ApiError(
        HttpStatus.SERVICE_UNAVAILABLE,
        'MODEL_LOAD_FAILED',
        `model ${id} failed to load: ${(e as Error).message}`,
      );
    }
  }
}
