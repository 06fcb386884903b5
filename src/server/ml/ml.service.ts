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
 */
import {
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { POOL_NONE, poolProblem } from '../../prg/heads/pool';
import { ImageCodec } from '../../prg/images';
import { FeatureOptions, PrgModelApi, SolveOptions } from '../../prg/inference-api';
import { isFlagged, predict } from '../../prg/predictions';
import { ApiError, badRequest } from '../common/errors';
import { InFlightRequests } from '../common/in-flight';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import {
  ClassifyArgs,
  FeaturesArgs,
  OodArgs,
  SolveArgs,
  TrajectoryArgs,
} from '../schemas/inference-requests';
import {
  ClassifyResponse,
  FeaturesResponse,
  OodResponse,
  TrajectoryFramesResponse,
} from '../schemas/inference-responses';
import { Model, ModelDetail, ModelList } from '../schemas/model.schema';
import { MetricsService } from '../metrics/metrics.service';
import { DynamicBatcher, Executor } from './batcher';
import { pickDefaultModel } from './default-model';
import { ImageInput, imageBytes, inputLabel } from './image-input';
import { LoadedModels } from './loaded-models';
import { CatalogChange, ModelCatalog, ModelEntry } from './model-catalog';
import { MODEL_LOADER, ModelLoader } from './model-loader';
import { tuneRunSize } from './run-size';

type Op = 'classify' | 'features' | 'ood';

/** One image's answer from a batched run. */
type RunFn<R> = (m: PrgModelApi, batch: Float32Array, n: number) => Promise<R[]>;

export type TrajectoryResult =
  | { kind: 'frames'; body: TrajectoryFramesResponse }
  | { kind: 'sprite'; model: string; t: number[]; png: Buffer };

function concat(items: Float32Array[]): Float32Array {
  const out = new Float32Array(items.reduce((s, x) => s + x.length, 0));
  let o = 0;
  for (const x of items) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

function rows(data: Float32Array, n: number): Float32Array[] {
  const per = data.length / n;
  return Array.from({ length: n }, (_, i) => data.slice(i * per, (i + 1) * per));
}

@Injectable()
export class MlService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Ml');
  private readonly loaded: LoadedModels;
  private readonly codec: ImageCodec;
  private readonly executors = new Map<string, Executor>();
  private readonly batchers = new Map<string, DynamicBatcher<Float32Array, unknown>>();
  /** Per model: requests accepted whose images are still decoding (they will submit soon). */
  private readonly incoming = new Map<string, number>();
  /** Requests (all models) that reached the batcher and have not been answered yet. */
  private active = 0;
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
    private readonly metrics: MetricsService,
    private readonly inFlight: InFlightRequests,
  ) {
    this.loaded = new LoadedModels(
      (e) => loader(e.dir, { device: config.device, threads: config.threads }),
      config.maxLoadedModels,
    );
    this.codec = new ImageCodec(config.maxPixels);
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
      input: m.input,
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

  async classify(args: ClassifyArgs, inputs: ImageInput[]): Promise<ClassifyResponse> {
    const entry = await this.resolve(args.model);
    const opts = this.solveOptions(args);
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
      ...this.solveOptions(args),
      ...this.featureSetting(entry, args),
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
    const opts = this.solveOptions(args);
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

  /** One image's reverse-process frames: one PNG sprite, or JSON with a base64 PNG per frame. */
  async trajectory(
    ref: string,
    args: TrajectoryArgs,
    inputs: ImageInput[],
  ): Promise<TrajectoryResult> {
    const entry = await this.resolve(ref);
    const opts = this.solveOptions(args);
    const frames = args.frames ?? 8;
    if (!Number.isInteger(frames) || frames < 2 || frames > this.config.maxFrames)
      throw badRequest(
        'INVALID_FRAMES',
        `frames must be an integer in [2, ${this.config.maxFrames}] (MAX_FRAMES)`,
      );
    this.checkCount(inputs);
    if (inputs.length !== 1)
      throw badRequest('ONE_IMAGE', `trajectory takes exactly one image, got ${inputs.length}`);
    const [image] = await this.decode(entry, inputs);
    const m = await this.load(entry);
    // Not batched, but serialised with the model's runs.
    const out = await this.executor(entry.id).run(() =>
      this.guard(entry.id, 'trajectory', [1, image.length], opts, () =>
        m.trajectory(image, { ...opts, frames }),
      ),
    );
    const n = out.shape[0];
    // inference-api.ts: frames run from t = 0 (the image) to t = 1 (noise).
    const t = Array.from({ length: n }, (_, i) => (n === 1 ? 0 : i / (n - 1)));
    const list = rows(out.data, n);
    const shape = entry.manifest.input;
    if (args.format === 'frames') {
      const pngs = await Promise.all(list.map((f) => this.codec.encodePng(f, shape)));
      return {
        kind: 'frames',
        body: { model: entry.id, t, frames: pngs.map((p) => p.toString('base64')) },
      };
    }
    const png = await this.codec.sprite(list, shape, args.scale ?? 1);
    return { kind: 'sprite', model: entry.id, t, png };
  }

  // ---- checks ----------------------------------------------------------------------------------

  /** steps ≤ MAX_STEPS (the rest of SolveArgs is validated by its schema). */
  private solveOptions(p: SolveArgs): SolveOptions {
    if (p.steps !== undefined && p.steps > this.config.maxSteps)
      throw badRequest(
        'INVALID_STEPS',
        `steps must be an integer in [1, ${this.config.maxSteps}] (MAX_STEPS), got ${p.steps}`,
      );
    return {
      ...(p.steps !== undefined ? { steps: p.steps } : {}),
      ...(p.solver !== undefined ? { solver: p.solver } : {}),
    };
  }

  /** t in (0, 1] (default the manifest's t*), pool "none" or n ≤ the image side. */
  private featureSetting(entry: ModelEntry, p: FeaturesArgs): { t: number; pool: number | null } {
    const t = p.t ?? entry.manifest.solver.tStar;
    if (!(t > 0 && t <= 1)) throw badRequest('INVALID_T', `t must be in (0, 1], got ${p.t}`);
    if (p.pool === undefined || p.pool === null || p.pool === POOL_NONE) return { t, pool: null };
    const pool = Number(p.pool);
    const bad = poolProblem(pool, entry.manifest.input);
    if (bad) throw badRequest('INVALID_POOL', bad);
    return { t, pool };
  }

  private checkCount(inputs: ImageInput[]): void {
    if (inputs.length === 0)
      throw badRequest(
        'NO_IMAGES',
        'no images: send multipart files in field "images" or JSON {"images": ["<base64>"]}',
      );
    if (inputs.length > this.config.maxImages)
      throw badRequest(
        'TOO_MANY_IMAGES',
        `${inputs.length} images; at most ${this.config.maxImages} per request (MAX_IMAGES)`,
      );
  }

  private decode(entry: ModelEntry, inputs: ImageInput[]): Promise<Float32Array[]> {
    const { channels, height, width } = entry.manifest.input;
    return Promise.all(
      inputs.map(async (inp, i) => {
        const label = inputLabel(inp, i);
        if ('tensor' in inp) {
          if (inp.tensor.length !== channels * height * width)
            throw badRequest(
              'INVALID_IMAGE',
              `${label}: ${inp.tensor.length} values; model ${entry.id} takes ${channels}×${height}×${width}`,
            );
          return inp.tensor;
        }
        const bytes = imageBytes(inp, label, this.config.maxUploadBytes);
        return this.codec.decode(bytes, entry.manifest.input, label);
      }),
    );
  }

  // ---- batching and running --------------------------------------------------------------------

  /**
   * More work for model `id` is on its way: a request for it is decoding, or an HTTP request is
   * in flight that has not reached the batcher yet (still being received or parsed).
   */
  private moreComing(id: string): boolean {
    return (this.incoming.get(id) ?? 0) > 0 || this.inFlight.count > this.active;
  }

  private executor(id: string): Executor {
    let e = this.executors.get(id);
    // In the main thread: one run at a time (ORT blocks it and already uses every core). With N
    // worker threads: N + 1, so the next batch is queued in a worker while the current one runs.
    const n = this.config.inferenceWorkers;
    if (!e) this.executors.set(id, (e = new Executor(n > 0 ? n + 1 : 1)));
    return e;
  }

  /**
   * Decode, load, and hand each image to the batcher of (model, op, settings). A run takes up to
   * the model's run size; more waiting images start further runs as the executor allows, and
   * each run's requests are answered as soon as it is done.
   */
  private async submit<R>(
    entry: ModelEntry,
    op: Op,
    opts: object,
    inputs: ImageInput[],
    run: RunFn<R>,
  ): Promise<R[]> {
    this.checkCount(inputs);
    const id = entry.id;
    this.incoming.set(id, (this.incoming.get(id) ?? 0) + 1);
    let images: Float32Array[];
    let m: PrgModelApi;
    try {
      [images, m] = await Promise.all([this.decode(entry, inputs), this.load(entry)]);
    } finally {
      this.incoming.set(id, this.incoming.get(id)! - 1);
    }
    const b = this.batcher(id, op, opts, m, run);
    this.metrics.inferencePending.inc({ model: id }, images.length);
    this.active++;
    try {
      return await Promise.all(images.map((x) => b.submit(x)));
    } finally {
      this.active--;
    }
  }

  private batcher<R>(
    id: string,
    op: Op,
    opts: object,
    m: PrgModelApi,
    run: RunFn<R>,
  ): DynamicBatcher<Float32Array, R> {
    const key = `${id}|${op}|${JSON.stringify(opts, Object.keys(opts).sort())}`;
    let b = this.batchers.get(key) as DynamicBatcher<Float32Array, R> | undefined;
    if (b) return b;
    if (this.batchers.size > 1000)
      for (const [k, x] of this.batchers) if (x.pending === 0) this.batchers.delete(k);
    const { channels: c, height: h, width: w } = m.manifest.input;
    const runSize = () => this.runSize(id);
    b = new DynamicBatcher<Float32Array, R>(
      async (items) => {
        this.metrics.inferencePending.dec({ model: id }, items.length);
        this.metrics.batchSize.observe({ model: id, op }, items.length);
        const end = this.metrics.inferenceDuration.startTimer({ model: id, op });
        try {
          return await this.guard(id, op, [items.length, c, h, w], opts, () =>
            run(m, concat(items), items.length),
          );
        } finally {
          end();
        }
      },
      {
        // Read at every run: warm-up may tune the run size after the batcher exists.
        get maxBatch() {
          return runSize();
        },
        maxWaitMs: this.config.maxWaitMs,
        incoming: () => this.moreComing(id),
      },
      this.executor(id),
    );
    this.batchers.set(key, b as DynamicBatcher<Float32Array, unknown>);
    return b;
  }

  private async guard<T>(
    id: string,
    op: string,
    shape: number[],
    opts: object,
    fn: () => Promise<T>,
  ): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ApiError) throw e;
      this.metrics.inferenceErrors.inc({ model: id, op });
      const msg = (e as Error).message;
      this.logger.error(
        `${op} on ${id} failed: input float32[${shape.join(',')}] opts ${JSON.stringify(opts)}: ${(e as Error).stack ?? msg}`,
      );
      throw new ApiError(
        HttpStatus.INTERNAL_SERVER_ERROR,
        'INFERENCE_FAILED',
        `${op} on ${id} failed for input [${shape.join(', ')}]: ${msg.split('\n')[0]}`,
      );
    }
  }
}
