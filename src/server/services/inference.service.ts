/**
 * Classification, features, OOD scores and trajectories for REST and GraphQL alike: resolves the
 * model, checks the options against the model and the configured caps, decodes the images, calls
 * MlService, and shapes the results.
 */
import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { SolveOptions } from '../../prg/inference-api';
import { SolverName } from '../../prg/manifest';
import { ApiError, badRequest } from '../common/errors';
import { ServerConfig } from '../config/config';
import { SERVER_CONFIG } from '../config/config.module';
import { ImageRepository } from '../repositories/image.repository';
import { ModelEntry, ModelRegistry } from '../repositories/model-registry.repository';
import { MlService } from './ml.service';

/** An image as received: raw bytes (multipart) or base64 text (JSON, GraphQL). */
export type ImageInput = { bytes: Buffer; name?: string } | { base64: string };

export interface LabelProbability {
  label: string;
  probability: number;
}

export interface ClassifyResult {
  label: string;
  index: number;
  probability: number;
  topK: LabelProbability[];
  /** Primary OOD score and whether it is below the manifest threshold; null without thresholds. */
  ood: { score: number; flagged: boolean; name: string } | null;
}

export interface SolveParams {
  steps?: number;
  solver?: string;
}

export interface FeatureParams extends SolveParams {
  t?: number;
  /** "none" | "n" | n */
  pool?: string | number | null;
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

@Injectable()
export class InferenceService {
  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    private readonly registry: ModelRegistry,
    private readonly images: ImageRepository,
    private readonly ml: MlService,
  ) {}

  async classify(
    modelRef: string | undefined,
    inputs: ImageInput[],
    params: SolveParams & { topK?: number },
  ): Promise<{ model: string; results: ClassifyResult[] }> {
    const entry = await this.registry.resolve(modelRef);
    const opts = this.solveOptions(params);
    const classes = entry.manifest.classes;
    const k = Math.min(params.topK ?? 5, classes.length);
    this.checkCount(inputs);
    const rows = await this.ml.classify(entry.id, this.decodeAll(entry, inputs), opts);
    const ood = entry.manifest.ood;
    return {
      model: entry.id,
      results: rows.map((r) => {
        const order = Array.from(r.probabilities.keys()).sort(
          (a, b) => r.probabilities[b] - r.probabilities[a],
        );
        const best = order[0];
        let o: ClassifyResult['ood'] = null;
        if (ood && r.ood && ood.primary in r.ood) {
          const score = r.ood[ood.primary];
          const th = ood.scores[ood.primary];
          // manifest.ts: flagged when the score is on the out-of-distribution side of the threshold.
          const flagged = th.higherIsInDistribution ? score < th.threshold : score > th.threshold;
          o = { name: ood.primary, score, flagged };
        }
        return {
          label: classes[best],
          index: best,
          probability: r.probabilities[best],
          topK: order
            .slice(0, k)
            .map((i) => ({ label: classes[i], probability: r.probabilities[i] })),
          ood: o,
        };
      }),
    };
  }

  async features(
    modelRef: string,
    inputs: ImageInput[],
    params: FeatureParams,
  ): Promise<{ model: string; t: number; shape: number[]; vectors: Float32Array[] }> {
    const entry = await this.registry.resolve(modelRef);
    const opts = this.solveOptions(params);
    const t = params.t ?? entry.manifest.solver.tStar;
    if (!(t > 0 && t <= 1)) throw badRequest('INVALID_T', `t must be in (0, 1], got ${params.t}`);
    let pool: number | null = null;
    if (params.pool !== undefined && params.pool !== null && params.pool !== 'none') {
      pool = Number(params.pool);
      const { height, width } = entry.manifest.input;
      if (!Number.isInteger(pool) || pool < 1 || pool > Math.min(height, width))
        throw badRequest(
          'INVALID_POOL',
          `pool must be "none" or an integer in [1, ${Math.min(height, width)}], got ${params.pool}`,
        );
    }
    this.checkCount(inputs);
    const rows = await this.ml.features(entry.id, this.decodeAll(entry, inputs), {
      ...opts,
      t,
      pool,
    });
    return {
      model: entry.id,
      t,
      shape: [rows.length, ...(rows[0]?.shape ?? [])],
      vectors: rows.map((r) => r.data),
    };
  }

  async ood(
    modelRef: string,
    inputs: ImageInput[],
    params: SolveParams,
  ): Promise<{
    model: string;
    primary: string | null;
    results: { scores: Record<string, number>; flagged: Record<string, boolean> }[];
  }> {
    const entry = await this.registry.resolve(modelRef);
    const opts = this.solveOptions(params);
    this.checkCount(inputs);
    const rows = await this.ml.ood(entry.id, this.decodeAll(entry, inputs), opts);
    const th = entry.manifest.ood?.scores ?? {};
    return {
      model: entry.id,
      primary: entry.manifest.ood?.primary ?? null,
      results: rows.map((scores) => ({
        scores,
        flagged: Object.fromEntries(
          Object.entries(scores)
            .filter(([k]) => k in th)
            .map(([k, s]) => [
              k,
              th[k].higherIsInDistribution ? s < th[k].threshold : s > th[k].threshold,
            ]),
        ),
      })),
    };
  }

  async trajectory(
    modelRef: string,
    inputs: ImageInput[],
    params: SolveParams & { frames?: number },
  ): Promise<{ model: string; t: number[]; frames: Float32Array[]; entry: ModelEntry }> {
    const entry = await this.registry.resolve(modelRef);
    const opts = this.solveOptions(params);
    const frames = params.frames ?? 8;
    if (!Number.isInteger(frames) || frames < 2 || frames > this.config.maxFrames)
      throw badRequest(
        'INVALID_FRAMES',
        `frames must be an integer in [2, ${this.config.maxFrames}] (MAX_FRAMES)`,
      );
    if (inputs.length !== 1)
      throw badRequest('ONE_IMAGE', `trajectory takes exactly one image, got ${inputs.length}`);
    const [x] = await this.decodeAll(entry, inputs);
    const out = await this.ml.trajectory(entry.id, x, { ...opts, frames });
    const n = out.shape[0];
    const per = out.data.length / n;
    return {
      model: entry.id,
      entry,
      // inference-api.ts: frames run from t = 0 (the image) to t = 1 (noise).
      t: Array.from({ length: n }, (_, i) => (n === 1 ? 0 : i / (n - 1))),
      frames: Array.from({ length: n }, (_, i) => out.data.slice(i * per, (i + 1) * per)),
    };
  }

  /** REST shape of features: JSON number arrays, or base64 little-endian float32 per image. */
  async featuresView(
    modelRef: string,
    inputs: ImageInput[],
    params: FeatureParams & { format?: 'json' | 'base64' },
  ) {
    const r = await this.features(modelRef, inputs, params);
    const base64 = params.format === 'base64';
    return {
      model: r.model,
      t: r.t,
      shape: r.shape,
      format: base64 ? 'base64' : 'json',
      ...(base64 ? { dtype: 'float32' } : {}),
      vectors: r.vectors.map((v) =>
        base64
          ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
          : Array.from(v),
      ),
    };
  }

  /** REST shape of a trajectory: one PNG sprite (frames left to right), or JSON base64 frames. */
  async trajectoryView(
    modelRef: string,
    inputs: ImageInput[],
    params: SolveParams & { frames?: number; format?: 'sprite' | 'frames'; scale?: number },
  ): Promise<
    | { kind: 'frames'; body: { model: string; t: number[]; frames: string[] } }
    | { kind: 'sprite'; model: string; t: number[]; png: Buffer }
  > {
    const r = await this.trajectory(modelRef, inputs, params);
    const shape = r.entry.manifest.input;
    if (params.format === 'frames') {
      const frames = await Promise.all(
        r.frames.map(async (f) => (await this.images.encodePng(f, shape)).toString('base64')),
      );
      return { kind: 'frames', body: { model: r.model, t: r.t, frames } };
    }
    const png = await this.images.sprite(r.frames, shape, params.scale ?? 1);
    return { kind: 'sprite', model: r.model, t: r.t, png };
  }

  /** steps ≤ MAX_STEPS, known solver → SolveOptions (absent fields keep the manifest's). */
  solveOptions(p: SolveParams): SolveOptions {
    const o: SolveOptions = {};
    if (p.steps !== undefined) {
      if (!Number.isInteger(p.steps) || p.steps < 1 || p.steps > this.config.maxSteps)
        throw badRequest(
          'INVALID_STEPS',
          `steps must be an integer in [1, ${this.config.maxSteps}] (MAX_STEPS), got ${p.steps}`,
        );
      o.steps = p.steps;
    }
    if (p.solver !== undefined) {
      if (!['euler', 'midpoint', 'rk4', 'dopri5'].includes(p.solver))
        throw badRequest(
          'INVALID_SOLVER',
          `solver must be one of euler, midpoint, rk4, dopri5, got "${p.solver}"`,
        );
      o.solver = p.solver as SolverName;
    }
    return o;
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

  private async decodeAll(entry: ModelEntry, inputs: ImageInput[]): Promise<Float32Array[]> {
    this.checkCount(inputs);
    const shape = entry.manifest.input;
    return Promise.all(
      inputs.map((inp, i) => {
        const label = `images[${i}]${'name' in inp && inp.name ? ` (${inp.name})` : ''}`;
        return this.images.decode(this.bytesOf(inp, label), shape, label);
      }),
    );
  }

  private bytesOf(inp: ImageInput, label: string): Buffer {
    if ('bytes' in inp) return inp.bytes;
    const s = inp.base64.replace(/^data:[^;,]*;base64,/, '');
    if (!BASE64.test(s)) throw badRequest('INVALID_IMAGE', `${label}: not base64 text`);
    const b = Buffer.from(s, 'base64');
    if (b.length > this.config.maxUploadBytes)
      throw new ApiError(
        HttpStatus.PAYLOAD_TOO_LARGE,
        'PAYLOAD_TOO_LARGE',
        `${label}: ${b.length} bytes exceeds MAX_UPLOAD_BYTES`,
      );
    return b;
  }
}

/** Collects the images of a REST request: multipart files, else the JSON body's base64 list. */
export function imageInputs(
  files: Express.Multer.File[] | undefined,
  base64: string[] | undefined,
): ImageInput[] {
  if (files && files.length) return files.map((f) => ({ bytes: f.buffer, name: f.originalname }));
  return (base64 ?? []).map((b) => ({ base64: b }));
}
