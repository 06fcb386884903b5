/**
 * Worker-thread entry of WorkerPoolModel: loads one model (its own ORT sessions) and answers
 * calls one at a time. onnxruntime-node runs block their thread, so running them here keeps the
 * HTTP event loop free and lets N workers use N cores.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PrgModelApi } from '../../prg/inference-api';
import { defaultModelLoader, LoadOptions } from './model-loader';

export type WorkerMethod = 'classify' | 'features' | 'oodScores' | 'trajectory' | 'sample';

export interface WorkerCall {
  id: number;
  method: WorkerMethod;
  args: unknown[];
}

export type WorkerReply =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

export type WorkerInit = { ready: true } | { ready: false; error: string };

/** Float32Array buffers in a result, to transfer instead of copy. */
function buffers(v: unknown, out: ArrayBuffer[] = []): ArrayBuffer[] {
  if (v instanceof Float32Array) {
    if (v.buffer instanceof ArrayBuffer && !out.includes(v.buffer)) out.push(v.buffer);
  } else if (v && typeof v === 'object') for (const x of Object.values(v)) buffers(x, out);
  return out;
}

async function main(): Promise<void> {
  const port = parentPort!;
  const { dir, opts } = workerData as { dir: string; opts: LoadOptions };
  let model: PrgModelApi;
  try {
    model = await defaultModelLoader(dir, opts);
  } catch (e) {
    port.postMessage({ ready: false, error: (e as Error).message } satisfies WorkerInit);
    return;
  }
  const handle = async (msg: WorkerCall | 'release'): Promise<void> => {
    if (msg === 'release') {
      await model.release().catch(() => {});
      port.postMessage('released');
      return;
    }
    try {
      const fn = model[msg.method] as (...a: unknown[]) => Promise<unknown>;
      const result = await fn.apply(model, msg.args);
      const reply: WorkerReply = { id: msg.id, ok: true, result };
      port.postMessage(reply, buffers(result));
    } catch (e) {
      port.postMessage({
        id: msg.id,
        ok: false,
        error: (e as Error).message,
      } satisfies WorkerReply);
    }
  };
  port.on('message', (msg: WorkerCall | 'release') => void handle(msg));
  port.postMessage({ ready: true } satisfies WorkerInit);
}

void main();
