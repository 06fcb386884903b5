/**
 * The VAE stage during fine-tuning (manifest.preprocess): the encoder is frozen — it runs in
 * inference mode on each training batch, its weights are not parameters of the step and are
 * written unchanged into the fine-tuned model — so the flow and head train on latents.
 *
 * Latent cache: without augmentation a training image always gives the same latent, so each
 * dataset index is encoded once per run and kept in memory (4×32×32 float32 = 16 KiB per image
 * for SD's VAE, against 1–2 s of encoder time per 256×256 image on 2 CPU cores). With
 * augmentation every epoch sees other pixels, so nothing is cached (row-cache.ts).
 */
import { Graph } from '../../engine/onnx/types';
import { SessionOptions } from '../../engine/runtime/session';
import { GraphCache } from '../graph-cache';
import { RowCache } from './row-cache';

export class FrozenEncoder {
  private readonly sessions: GraphCache;
  private readonly cache?: RowCache;
  readonly latentSize: number;

  constructor(
    private readonly encoder: Graph,
    session: SessionOptions,
    useCache: boolean,
  ) {
    this.sessions = new GraphCache(session, 1);
    const out = encoder.outputs.find((o) => o.name === 'latent');
    const dims = out?.shape.slice(1) ?? [];
    if (!out || dims.some((d) => typeof d !== 'number'))
      throw new Error('frozen encoder: the stage graph has no static latent output');
    this.latentSize = (dims as number[]).reduce((a, b) => a * b, 1);
    if (useCache) this.cache = new RowCache(this.latentSize);
  }

  get hits(): number {
    return this.cache?.hits ?? 0;
  }

  get misses(): number {
    return this.cache?.misses ?? 0;
  }

  /** Latents of a batch of images ([n, C, H, W] in [−1, 1]); `indices` key the cache. */
  async encode(x: Float32Array, n: number, indices: Int32Array): Promise<Float32Array> {
    const L = this.latentSize;
    const out = new Float32Array(n * L);
    const todo: number[] = [];
    for (let i = 0; i < n; i++) {
      const hit = this.cache?.get(indices[i]);
      if (hit) out.set(hit, i * L);
      else todo.push(i);
    }
    if (!todo.length) return out;
    const P = x.length / n;
    const img = new Float32Array(todo.length * P);
    todo.forEach((i, k) => img.set(x.subarray(i * P, (i + 1) * P), k * P));
    const inShape = this.encoder.inputs[0].shape.slice(1) as number[];
    const res = await this.sessions.run('encoder', () => this.encoder, {
      image: { dtype: 'float32', dims: [todo.length, ...inShape], data: img },
    });
    const lat = res.latent.data as Float32Array;
    todo.forEach((i, k) => {
      const z = lat.subarray(k * L, (k + 1) * L);
      out.set(z, i * L);
      this.cache?.set(indices[i], z);
    });
    return out;
  }

  async release(): Promise<void> {
    this.cache?.clear();
    await this.sessions.clear();
  }
}
