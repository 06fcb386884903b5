/**
 * The ML boundary. Every call from a route into a PRG model goes through this one component, in
 * one pipeline:
 *   resolve the model reference (default-model policy) → check the request against the model and
 *   the configured caps → decode the images → load the model (LRU of loaded models) → batch
 *   (same model, operation and settings coalesce into runs of up to the model's run size) → run
 *   → summarise failures (logged with model, operation, batch shape and settings; answered as one
 *   500 INFERENCE_FAILED).
 * It also warms models up in the background (the server listens meanwhile) and says what exists
 * and what is loaded (/models, readiness). Routes and resolvers are one call into it.
 *
 * Its parts, each in a file of its own: model-catalog.ts (what exists under MODELS_DIR),
 * default-model.ts (which one a request without `model` gets), loaded-models.ts (the LRU of
 * loaded models), request-checks.ts (caps, t and pool, image decoding), model-runs.ts (batching,
 * executors, the failure summary), run-size.ts (warm-up tuning).
 */
import { imageInput } from '../../prg/manifest';
import {
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { POOL_NONE } from '../../prg/heads/pool';
import { FeatureOptions, PrgModelApi } from '../../prg/inference-api';
import { SolverName } from '../../prg/manifest';
import { isFlagged, predict } from '../../prg/predictions';
import { ApiError, badRequest } from '../common/errors';
import { InFlightRequests } from '../common/in-flight';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import {
  ClassifyArgs,
  FeaturesArgs,
  OodArgs,
  SampleArgs,
  TrajectoryArgs,
} from '../schemas/inference-requests';
import {
  ClassifyResponse,
  FeaturesResponse,
  OodResponse,
  SamplesResponse,
  TrajectoryFramesResponse,
} from '../schemas/inference-responses';
import { SAMPLE_DEFAULTS } from '../../prg/generation/sample';
import { imageGridPng } from '../../prg/generation/grid';
import { Model, ModelDetail, ModelList } from '../schemas/model.schema';
import { MetricsService } from '../metrics/metrics.service';
import { pickDefaultModel } from './default-model';
import { ImageInput } from './image-input';
import { LoadedModels } from './loaded-models';
import { CatalogChange, ModelCatalog, ModelEntry } from './model-catalog';
import { MODEL_LOADER, ModelLoader } from './model-loader';
import { ModelRuns, Op, RunFn } from './model-runs';
import { RequestChecks } from './request-checks';
import { tuneRunSize } from './run-size';

/** What one `infer` pass can return per image (tensor protocols name them as outputs). */
export const INFER_OUTPUTS = ['logits', 'probabilities', 'features', 'ood'] as const;
export type InferOutput = (typeof INFER_OUTPUTS)[number];

export interface InferArgs {
  /** At least one; `ood` needs a model with a calibrated primary OOD score. */
  outputs: readonly InferOutput[];
  /** Time of `features` in (0, 1] (default the manifest's t*). */
  t?: number;
  steps?: number;
  solver?: SolverName;
}

/** One image's answer: the outputs asked for. */
export interface InferRow {
  logits?: Float32Array;
  probabilities?: Float32Array;
  /** x_t at `InferResult.t`, the whole of it (not pooled), CHW flattened. */
  features?: Float32Array;
  /** The manifest's primary OOD score and whether it is on the out-of-distribution side. */
  ood?: { score: number; flagged: boolean };
}

export interface InferResult {
  model: ModelEntry;
  /** The features' time when `features` was asked for, else null. */
  t: number | null;
  /** The primary OOD score's name when `ood` was asked for, else null. */
  oodScore: string | null;
  rows: InferRow[];
}

export type SamplesResult =
  | { kind: 'images'; body: SamplesResponse }
  | { kind: 'grid'; body: Omit<SamplesResponse, 'images'>; png: Buffer };

export type TrajectoryResult =
  | { kind: 'frames'; body: TrajectoryFramesResponse }
  | { kind: 'sprite'; model: string; t: number[]; png: Buffer };

function rows(data: Float32Array, n: number): Float32Array[] {
  const per = data.length / n;
  return Array.from({ length: n }, (_, i) => data.slice(i * per, (i + 1) * per));
}

@Injectable()
export class MlService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Ml');
  private readonly loaded: LoadedModels;
  private readonly checks: RequestChecks;
  private readonly runs: ModelRuns;
  /** Per model: the batch size with the lowest time per image, measured at warm-up. */
  private readonly runSizes = new Map<string, number>();
  /** Models whose warm-up has ended (loaded and tuned, or failed). */
  private readonly warmed = new Set<string>();
  private defaultId: string | null = null;
  private warming: Promise<void> = Promise.resolve();
  private started = false;
  private closing = false;

  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    private readonly catalog: ModelCatalog,
    @Inject(MODEL_LOADER) loader: ModelLoader,
    metrics: MetricsService,
    inFlight: InFlightRequests,
  ) {
    this.loaded = new LoadedModels(
      (e) =>
        loader(e.dir, {
          device: config.device,
          threads: config.threads,
          maxGraphs: config.maxGraphs,
          stepwiseAbove: config.stepwiseAboveMb * 2 ** 20,
        }),
      config.maxLoadedModels,
    );
    this.checks = new RequestChecks(config);
    this.runs = new ModelRuns(config, metrics, inFlight, (id) => this.runSize(id));
    catalog.onChange((c) => this.catalogChanged(c));
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async onApplicationBootstrap(): Promise<void> {
    await this.catalog.start();
    this.started = true;
    // Not awaited: the server listens (and /health/live answers) while models warm up.
    this.warming = this.warmUp();
  }

  /** Resolves when the start-up warm-up (WARMUP) has ended. */
  whenWarm(): Promise<void> {
    return this.warming;
  }

  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    await this.loaded.close();
  }

  private catalogChanged({ added, removed }: CatalogChange): void {
    for (const e of removed) {
      this.loaded.release(e.id);
      this.runSizes.delete(e.id);
      this.warmed.delete(e.id);
    }
    const before = this.defaultId;
    this.defaultId = pickDefaultModel(this.catalog, this.config.defaultModel);
    if (this.config.defaultModel && !this.defaultId && before !== null)
      this.logger.warn(`DEFAULT_MODEL ${this.config.defaultModel} is gone`);
    // Versions that appear later (fine-tunes) warm up in the background with WARMUP=all.
    if (this.started && this.config.warmup === 'all' && !this.closing)
      for (const e of added) void this.warmOne(e);
  }

  private async warmUp(): Promise<void> {
    if (this.config.defaultModel && !this.defaultId)
      this.logger.warn(
        `DEFAULT_MODEL ${this.config.defaultModel} not found under ${this.config.modelsDir}`,
      );
    if (this.config.warmup === 'none') return;
    const def = this.defaultId ? this.catalog.find(this.defaultId) : undefined;
    if (def) await this.warmOne(def);
    if (this.config.warmup === 'all')
      for (const e of this.catalog.list())
        if (e.id !== def?.id && !this.closing) await this.warmOne(e);
  }

  private async warmOne(e: ModelEntry): Promise<void> {
    try {
      const started = Date.now();
      const m = await this.loaded.get(e);
      const { runSize, perImage } = await tuneRunSize(m, this.config.maxBatch);
      this.runSizes.set(e.id, runSize);
      this.logger.log(
        `warmed up ${e.id} in ${Date.now() - started} ms; ms/image by batch: ` +
          Object.entries(perImage)
            .map(([n, ms]) => `${n}:${ms.toFixed(2)}`)
            .join(' ') +
          ` → run size ${this.runSize(e.id)}`,
      );
    } catch (err) {
      this.logger.error(`warm-up of ${e.id} failed: ${(err as Error).message}`);
    } finally {
      this.warmed.add(e.id);
    }
  }

  /** Largest batch handed to the model in one call: RUN_BATCH, else the warm-up's best, else MAX_BATCH. */
  runSize(id: string): number {
    return this.config.runBatch || this.runSizes.get(id) || this.config.maxBatch;
  }

  // ---- what exists -----------------------------------------------------------------------------

  get defaultModelId(): string | null {
    return this.defaultId;
  }

  /** The readiness check of the models: at least one, and the default one warm (unless WARMUP=none). */
  modelsReadiness(): { ok: boolean; detail: string; count: number } {
    const count = this.catalog.size;
    const def = this.defaultId;
    const failed = def ? this.loaded.loadError(def) : undefined;
    const warm = this.config.warmup === 'none' || (def !== null && this.warmed.has(def));
    const loaded = this.config.warmup === 'none' || (def !== null && this.loaded.isLoaded(def));
    const detail =
      count === 0
        ? `no valid model under ${this.config.modelsDir}`
        : !warm
          ? 'warming up'
          : failed
            ? `default model ${def} failed to load: ${failed}`
            : !loaded
              ? `default model ${def ?? '(none)'} not loaded`
              : `${count} model(s), default ${def}`;
    return { ok: count > 0 && warm && loaded, detail, count };
  }

  models(): ModelList {
    return { default: this.defaultId, models: this.catalog.list().map((e) => this.view(e)) };
  }

  async model(ref: string): Promise<ModelDetail> {
    const e = await this.resolve(ref);
    return { ...this.view(e), manifest: e.manifest };
  }

  async rescan(): Promise<ModelList> {
    await this.catalog.rescan();
    return this.models();
  }

  /** The model loaded for `ref`: a test and tool hook (requests go through the operations). */
  async loadedModel(ref: string): Promise<PrgModelApi> {
    return this.load(await this.resolve(ref));
  }

  private view(e: ModelEntry): Model {
    const m = e.manifest;
    return {
      id: e.id,
      name: m.name,
      version: m.version,
      description: m.description ?? null,
      isDefault: e.id === this.defaultId,
      loaded: this.loaded.isLoaded(e.id),
      loadError: this.loaded.loadError(e.id) ?? null,
      createdAt: m.createdAt,
      // What clients send: the VAE stage's image for latent models with one (manifest.preprocess).
      input: imageInput(m),
      classes: m.classes,
      interpolant: m.interpolant,
      solver: m.solver,
      metrics: m.metrics ?? {},
      ood: m.ood ?? null,
    };
  }

  /**
   * The entry for `ref` ("name@version", "name" = latest version, absent = default model).
   * Unknown: rescans once (a version may have just been written), then 404 listing what exists.
   */
  /** The installed model `ref` names, or undefined: no rescan, no error (fine-tune jobs' base). */
  find(ref: string): ModelEntry | undefined {
    return this.catalog.find(ref);
  }

  async resolve(ref?: string | null): Promise<ModelEntry> {
    const pick = () =>
      ref ? this.catalog.find(ref) : this.defaultId ? this.catalog.find(this.defaultId) : undefined;
    let e = pick();
    if (!e) {
      await this.catalog.rescan();
      e = pick();
    }
    if (e) return e;
    if (this.catalog.size === 0)
      throw new ApiError(
        HttpStatus.SERVICE_UNAVAILABLE,
        'NO_MODELS',
        'no model is installed under MODELS_DIR',
      );
    if (!ref)
      throw new ApiError(HttpStatus.NOT_FOUND, 'MODEL_NOT_FOUND', 'no default model; pass "model"');
    throw new ApiError(
      HttpStatus.NOT_FOUND,
      'MODEL_NOT_FOUND',
      `unknown model "${ref}"; available: ${this.catalog
        .list()
        .map((x) => x.id)
        .join(', ')}`,
    );
  }

  private async load(e: ModelEntry): Promise<PrgModelApi> {
    try {
      return await this.loaded.get(e);
    } catch (err) {
      throw new ApiError(
        HttpStatus.SERVICE_UNAVAILABLE,
        'MODEL_LOAD_FAILED',
        `model ${e.id} failed to load: ${(err as Error).message}`,
      );
    }
  }

  // ---- operations ------------------------------------------------------------------------------

  /** Check the image count, then decode and load (together) and run in the model's batches. */
  private submit<R>(
    entry: ModelEntry,
    op: Op,
    opts: object,
    inputs: ImageInput[],
    run: RunFn<R>,
  ): Promise<R[]> {
    this.checks.checkCount(inputs);
    const prepare = () =>
      Promise.all([this.checks.decode(entry, inputs), this.load(entry)] as const);
    return this.runs.submit(entry.id, op, opts, prepare, run);
  }

  async classify(args: ClassifyArgs, inputs: ImageInput[]): Promise<ClassifyResponse> {
    const entry = await this.resolve(args.model);
    const opts = this.checks.solveOptions(entry, args);
    const { classes, ood } = entry.manifest;
    const primary = ood?.primary;
    const out = await this.submit(entry, 'classify', opts, inputs, async (m, batch, n) => {
      // The primary OOD score comes from the classify pass itself (one trajectory per image).
      const r = await m.classify({ data: batch, n }, primary ? { ...opts, ood: [primary] } : opts);
      const scores = primary ? r.ood?.[primary] : undefined;
      return rows(r.probabilities, n).map((p, i) => ({ p, score: scores?.[i] ?? NaN }));
    });
    return {
      model: entry.id,
      results: out.map(({ p, score }) => ({
        ...predict(p, classes, args.topK ?? 5),
        ood:
          ood && primary && primary in ood.scores
            ? { name: primary, score, flagged: isFlagged(score, ood.scores[primary]) }
            : null,
      })),
    };
  }

  /** x_t at time t; REST may ask for base64 float32 instead of number lists. */
  async features(ref: string, args: FeaturesArgs, inputs: ImageInput[]): Promise<FeaturesResponse> {
    const entry = await this.resolve(ref);
    const opts: FeatureOptions = {
      ...this.checks.solveOptions(entry, args),
      ...this.checks.featureSetting(entry, args),
    };
    const out = await this.submit(entry, 'features', opts, inputs, async (m, batch, n) => {
      const r = await m.features({ data: batch, n }, opts);
      const shape = r.shape.slice(1);
      return rows(r.data, n).map((data) => ({ data, shape }));
    });
    const base64 = args.format === 'base64';
    return {
      model: entry.id,
      t: opts.t!,
      shape: [out.length, ...(out[0]?.shape ?? [])],
      format: base64 ? 'base64' : 'json',
      ...(base64 ? { dtype: 'float32' as const } : {}),
      vectors: base64
        ? out.map(({ data: v }) =>
            Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'),
          )
        : out.map(({ data }) => Array.from(data)),
    };
  }

  async ood(ref: string, args: OodArgs, inputs: ImageInput[]): Promise<OodResponse> {
    const entry = await this.resolve(ref);
    const opts = this.checks.solveOptions(entry, args);
    const out = await this.submit(entry, 'ood', opts, inputs, async (m, batch, n) => {
      const s = await m.oodScores({ data: batch, n }, opts);
      return Array.from({ length: n }, (_, i) =>
        Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v[i]])),
      );
    });
    const th = entry.manifest.ood?.scores ?? {};
    return {
      model: entry.id,
      primary: entry.manifest.ood?.primary ?? null,
      results: out.map((scores) => ({
        scores,
        flagged: Object.fromEntries(
          Object.entries(scores)
            .filter(([k]) => k in th)
            .map(([k, s]) => [k, isFlagged(s, th[k])]),
        ),
      })),
    };
  }

  /**
   * Raw outputs for tensor protocols (the Open Inference Protocol): logits, probabilities, the
   * primary OOD score and flag (all from one classify pass, as in `classify`), and x_t at t. Batched
   * with other `infer` requests of the same model, outputs and settings.
   */
  async infer(ref: string, args: InferArgs, inputs: ImageInput[]): Promise<InferResult> {
    const entry = await this.resolve(ref);
    const solve = this.checks.solveOptions(entry, args);
    const want = new Set(args.outputs);
    if (want.size === 0) throw badRequest('UNKNOWN_OUTPUT', 'no output requested');
    const ood = entry.manifest.ood;
    const primary = ood?.primary && ood.primary in ood.scores ? ood.primary : null;
    if (want.has('ood') && !primary)
      throw badRequest('UNKNOWN_OUTPUT', `model ${entry.id} has no calibrated OOD score`);
    // t is checked whenever it is given, so a bad value never passes silently.
    const feature =
      want.has('features') || args.t !== undefined
        ? this.checks.featureSetting(entry, { t: args.t, pool: POOL_NONE })
        : null;
    const t = want.has('features') ? feature!.t : null;
    const classify = want.has('logits') || want.has('probabilities') || want.has('ood');
    const score = want.has('ood') ? primary : null;
    const key = { ...solve, outputs: [...want].sort(), t };
    const rowsOut = await this.submit(entry, 'infer', key, inputs, async (m, batch, n) => {
      const out: InferRow[] = Array.from({ length: n }, () => ({}));
      if (classify) {
        const r = await m.classify({ data: batch, n }, score ? { ...solve, ood: [score] } : solve);
        const logits = rows(r.logits, n);
        const probabilities = rows(r.probabilities, n);
        out.forEach((o, i) => {
          if (want.has('logits')) o.logits = logits[i];
          if (want.has('probabilities')) o.probabilities = probabilities[i];
          if (score) {
            const s = r.ood?.[score]?.[i] ?? NaN;
            o.ood = { score: s, flagged: isFlagged(s, ood!.scores[score]) };
          }
        });
      }
      if (t !== null) {
        const r = await m.features({ data: batch, n }, { ...solve, t, pool: null });
        rows(r.data, n).forEach((f, i) => (out[i].features = f));
      }
      return out;
    });
    return { model: entry, t, oodScore: score, rows: rowsOut };
  }

  /** One image's reverse-process frames: one PNG sprite, or JSON with a base64 PNG per frame. */
  async trajectory(
    ref: string,
    args: TrajectoryArgs,
    inputs: ImageInput[],
  ): Promise<TrajectoryResult> {
    const entry = await this.resolve(ref);
    const opts = this.checks.solveOptions(entry, args);
    const frames = args.frames ?? 8;
    if (!Number.isInteger(frames) || frames < 2 || frames > this.config.maxFrames)
      throw badRequest(
        'INVALID_FRAMES',
        `frames must be an integer in [2, ${this.config.maxFrames}] (MAX_FRAMES)`,
      );
    this.checks.checkCount(inputs);
    if (inputs.length !== 1)
      throw badRequest('ONE_IMAGE', `trajectory takes exactly one image, got ${inputs.length}`);
    const [image] = await this.checks.decode(entry, inputs);
    const m = await this.load(entry);
    // Not batched, but serialised with the model's runs.
    const out = await this.runs
      .executor(entry.id)
      .run(() =>
        this.runs.guard(entry.id, 'trajectory', [1, image.length], opts, () =>
          m.trajectory(image, { ...opts, frames }),
        ),
      );
    const n = out.shape[0];
    // inference-api.ts: frames run from t = 0 (the image) to t = 1 (noise).
    const t = Array.from({ length: n }, (_, i) => (n === 1 ? 0 : i / (n - 1)));
    const list = rows(out.data, n);
    // Frames are images (decoded through the VAE stage when the model has its decoder) or latents.
    const shape = { channels: out.shape[1], height: out.shape[2], width: out.shape[3] };
    if (args.format === 'frames') {
      const pngs = await Promise.all(list.map((f) => this.checks.codec.encodePng(f, shape)));
      return {
        kind: 'frames',
        body: { model: entry.id, t, frames: pngs.map((p) => p.toString('base64')) },
      };
    }
    const png = await this.checks.codec.sprite(list, shape, args.scale ?? 1);
    return { kind: 'sprite', model: entry.id, t, png };
  }

  /**
   * n generated images (forward ODE from seeded noise, t = 1 → 0): one PNG grid, or JSON with a
   * base64 PNG per image. Not batched (no images in), but serialised with the model's runs.
   */
  async samples(ref: string, args: SampleArgs): Promise<SamplesResult> {
    const entry = await this.resolve(ref);
    // steps ≤ MAX_STEPS and classLabel against the manifest's labels (null class by default).
    const solve = this.checks.solveOptions(entry, args);
    const n = args.n ?? Math.min(16, this.config.maxImages);
    if (n > this.config.maxImages)
      throw badRequest(
        'TOO_MANY_SAMPLES',
        `n must be an integer in [1, ${this.config.maxImages}] (MAX_IMAGES), got ${n}`,
      );
    const opts = {
      n,
      steps: solve.steps ?? SAMPLE_DEFAULTS.steps,
      solver: solve.solver ?? SAMPLE_DEFAULTS.solver,
      seed: args.seed ?? SAMPLE_DEFAULTS.seed,
      ...(solve.classLabel !== undefined ? { classLabel: solve.classLabel } : {}),
    };
    const m = await this.load(entry);
    const out = await this.runs
      .executor(entry.id)
      .run(() => this.runs.guard(entry.id, 'samples', [n], opts, () => m.sample(opts)));
    const meta = {
      model: entry.id,
      shape: out.shape,
      solver: opts.solver,
      steps: opts.steps,
      seed: opts.seed,
      classLabel:
        solve.classLabel ?? entry.manifest.architecture.velocity.labels?.nullClass ?? null,
    };
    if (args.format === 'images') {
      const shape = entry.manifest.input;
      const pngs = await Promise.all(
        rows(out.data, n).map((f) => this.checks.codec.encodePng(f, shape)),
      );
      return { kind: 'images', body: { ...meta, images: pngs.map((p) => p.toString('base64')) } };
    }
    const png = await imageGridPng(out.data, out.shape, { scale: args.scale ?? 1 });
    return { kind: 'grid', body: meta, png };
  }
}
