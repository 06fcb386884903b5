/**
 * What the ML boundary checks and prepares before a request reaches a model: the configured caps
 * (MAX_STEPS, MAX_IMAGES, MAX_UPLOAD_BYTES, MAX_PIXELS), the model-dependent settings (t, pool),
 * and the images decoded to the model's input (src/prg/images.ts). The rest of each request's
 * shape is validated by its schema (src/server/schemas) before it gets here.
 */
import { imageInput } from '../../prg/manifest';
import { POOL_NONE, poolProblem } from '../../prg/heads/pool';
import { ImageCodec, pixelToInput } from '../../prg/images';
import { SolveOptions } from '../../prg/inference-api';
import { classLabelProblem } from '../../prg/manifest';
import { badRequest } from '../common/errors';
import { ServerConfig } from '../config/config';
import { FeaturesArgs, SolverArgs } from '../schemas/inference-requests';
import { ImageInput, imageBytes, inputLabel } from './image-input';
import type { ModelEntry } from './model-catalog';

export class RequestChecks {
  readonly codec: ImageCodec;

  constructor(private readonly config: ServerConfig) {
    this.codec = new ImageCodec(config.maxPixels);
  }

  /**
   * steps ≤ MAX_STEPS; classLabel within the model's label range, and only for a
   * class-conditional model (the rest of SolverArgs is validated by its schema).
   */
  solveOptions(entry: ModelEntry, p: SolverArgs): SolveOptions {
    if (p.steps !== undefined && p.steps > this.config.maxSteps)
      throw badRequest(
        'INVALID_STEPS',
        `steps must be an integer in [1, ${this.config.maxSteps}] (MAX_STEPS), got ${p.steps}`,
      );
    if (p.classLabel !== undefined && p.classLabel !== null) {
      const bad = classLabelProblem(entry.manifest.architecture.velocity.labels, p.classLabel);
      if (bad) throw badRequest('INVALID_CLASS_LABEL', `model ${entry.id}: ${bad}`);
    }
    return {
      ...(p.steps !== undefined ? { steps: p.steps } : {}),
      ...(p.solver !== undefined ? { solver: p.solver } : {}),
      ...(p.classLabel !== undefined && p.classLabel !== null ? { classLabel: p.classLabel } : {}),
    };
  }

  /** t in (0, 1] (default the manifest's t*), pool "none" or n ≤ the image side. */
  featureSetting(entry: ModelEntry, p: FeaturesArgs): { t: number; pool: number | null } {
    const t = p.t ?? entry.manifest.solver.tStar;
    if (!(t > 0 && t <= 1)) throw badRequest('INVALID_T', `t must be in (0, 1], got ${p.t}`);
    if (p.pool === undefined || p.pool === null || p.pool === POOL_NONE) return { t, pool: null };
    const pool = Number(p.pool);
    const bad = poolProblem(pool, entry.manifest.input);
    if (bad) throw badRequest('INVALID_POOL', bad);
    return { t, pool };
  }

  checkCount(inputs: ImageInput[]): void {
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

  decode(entry: ModelEntry, inputs: ImageInput[]): Promise<Float32Array[]> {
    // A model with a VAE stage takes images of the stage's input (manifest.preprocess.image).
    const shape = imageInput(entry.manifest);
    const { channels, height, width } = shape;
    return Promise.all(
      inputs.map(async (inp, i) => {
        const label = inputLabel(inp, i);
        if ('tensor' in inp || 'pixels' in inp) {
          const values = 'tensor' in inp ? inp.tensor : inp.pixels;
          if (values.length !== channels * height * width)
            throw badRequest(
              'INVALID_IMAGE',
              `${label}: ${values.length} values; model ${entry.id} takes ${channels}×${height}×${width}`,
            );
          return 'tensor' in inp ? inp.tensor : Float32Array.from(inp.pixels, pixelToInput);
        }
        const bytes = imageBytes(inp, label, this.config.maxUploadBytes);
        return this.codec.decode(bytes, shape, label);
      }),
    );
  }
}
