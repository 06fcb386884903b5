/**
 * A PrgModelApi whose calls run in N worker threads (inference-worker.ts), each holding its own
 * copy of the model with ORT intra-op threads split between them. Chosen by PRG_INFERENCE_WORKERS;
 * the ML boundary then runs up to N batches of a model at once.
 */
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  ClassifyOptions,
  ClassifyOutput,
  FeatureOptions,
  FeatureOutput,
  ImageBatch,
  PrgModelApi,
  SampleOptions,
  SolveOptions,
} from '../../prg/inference-api';
import { ModelManifest } from '../../prg/manifest';
import { readManifest } from '../../prg/model-dir/io';
import type { WorkerCall, WorkerInit, WorkerMethod, WorkerReply } from './inference-worker';
import { LoadOptions, ModelLoader } from './model-loader';

interface Slot {
  worker: Worker;
  busy: number;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
}

/** The compiled worker entry beside this file. */
export const DEFAULT_WORKER_ENTRY = path.join(__dirname, 'inference-worker.js');

export class WorkerPoolModel implements PrgModelApi {
  private nextId = 1;

  private constructor(
    readonly manifest: ModelManifest,
    private readonly slots: Slot[],
  ) {}

  get id(): string {
    return `${this.manifest.name}@${this.manifest.version}`;
  }

  get workers(): number {
    return this.slots.length;
  }

  static async create(
    dir: string,
    opts: LoadOptions,
    n: number,
    entry = DEFAULT_WORKER_ENTRY,
  ): Promise<WorkerPoolModel> {
    const manifest = await readManifest(dir);
    // Split the ORT threads between workers (PRG_THREADS=0: one per core).
    const total = opts.threads > 0 ? opts.threads : availableParallelism();
    const threads = Math.max(1, Math.floor(total / n));
    const slots: Slot[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const worker = new Worker(entry, { workerData: { dir, opts: { ...opts, threads } } });
        const slot: Slot = { worker, busy: 0, pending: new Map() };
        slots.push(slot);
        await new Promise<void>((resolve, reject) => {
          worker.once('message', (m: WorkerInit) =>
            m.ready ? resolve() : reject(new Error(m.error)),
          );
          worker.once('error', reject);
        });
        worker.on('message', (m: WorkerReply) => {
          const p = slot.pending.get(m.id);
          if (!p) return;
          slot.pending.delete(m.id);
          slot.busy--;
          if (m.ok) p.resolve(m.result);
          else p.reject(new Error(m.error));
        });
        worker.on('error', (e) => {
          for (const p of slot.pending.values()) p.reject(e);
          slot.pending.clear();
        });
      }
    } catch (e) {
      await Promise.all(slots.map((s) => s.worker.terminate()));
      throw e;
    }
    return new WorkerPoolModel(manifest, slots);
  }

  private call<T>(method: WorkerMethod, args: unknown[]): Promise<T> {
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    slot.busy++;
    return new Promise<T>((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      slot.worker.postMessage({ id, method, args } satisfies WorkerCall);
    });
  }

  classify(batch: ImageBatch, opts?: ClassifyOptions): Promise<ClassifyOutput> {
    return this.call('classify', [batch, opts]);
  }

  features(batch: ImageBatch, opts?: FeatureOptions): Promise<FeatureOutput> {
    return this.call('features', [batch, opts]);
  }

  oodScores(batch: ImageBatch, opts?: SolveOptions): Promise<Record<string, Float32Array>> {
    return this.call('oodScores', [batch, opts]);
  }

  trajectory(
    image: Float32Array,
    opts?: SolveOptions & { frames?: number },
  ): Promise<FeatureOutput> {
    return this.call('trajectory', [image, opts]);
  }

  sample(opts: SampleOptions): Promise<FeatureOutput> {
    return this.call('sample', [opts]);
  }

  async release(): Promise<void> {
    await Promise.all(
      this.slots.map(async (s) => {
        // Let the worker release its ORT sessions (up to 5 s), then end the thread.
        const released = new Promise<void>((r) => {
          s.worker.on('message', (m) => m === 'released' && r());
          setTimeout(r, 5000).unref();
        });
        s.worker.postMessage('release');
        await released;
        await s.worker.terminate();
      }),
    );
  }
}

export function workerPoolLoader(n: number, entry?: string): ModelLoader {
  return (dir, opts) => WorkerPoolModel.create(dir, opts, n, entry);
}
