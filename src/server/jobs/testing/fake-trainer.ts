/**
 * TEST DOUBLE for fineTuneModel (src/prg/training/job-api.ts): no learning happens. It walks
 * epochs × steps with a delay per step, reports progress per step (loss = 1 / (1 + step), a
 * placeholder, not a measurement), checkpoints after every epoch in `checkpointDir` (temp + rename),
 * resumes from the last checkpoint, honours the AbortSignal between steps, and writes the output
 * model directory atomically as a copy of the base model with a new name/version. Lets the server's
 * queue, resume, cancel and registry paths be tested quickly; the real trainer is tested in
 * src/prg/training.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { FineTuneJobOptions, FineTuneJobResult } from '../../../prg/training/job-api';
import type { FineTuneTrainer } from '../fine-tune.types';

export interface FakeTrainerOptions {
  stepsPerEpoch?: number;
  stepDelayMs?: number;
  /** Throw this message at the given global step (failure path). */
  failAtStep?: number;
}

export interface FakeRunRecord {
  pid: number;
  startEpoch: number;
}

export function fakeTrainer(o: FakeTrainerOptions = {}): FineTuneTrainer {
  const S = o.stepsPerEpoch ?? 3;
  const delay = o.stepDelayMs ?? 5;
  return async (opts: FineTuneJobOptions): Promise<FineTuneJobResult> => {
    const E = opts.hyperparameters.epochs ?? 2;
    await fs.mkdir(opts.checkpointDir, { recursive: true });
    const ckpt = path.join(opts.checkpointDir, 'fake-state.json');
    const done = await fs
      .readFile(ckpt, 'utf8')
      .then((t) => (JSON.parse(t) as { epoch: number }).epoch)
      .catch(() => 0);
    const run: FakeRunRecord = { pid: process.pid, startEpoch: done + 1 };
    await fs.appendFile(path.join(opts.checkpointDir, 'runs.jsonl'), JSON.stringify(run) + '\n');
    for (let e = done + 1; e <= E; e++) {
      for (let s = 1; s <= S; s++) {
        if (opts.signal?.aborted) throw new Error('aborted');
        await new Promise((r) => setTimeout(r, delay));
        const g = (e - 1) * S + s;
        if (o.failAtStep === g) throw new Error(`fake trainer failure at step ${g}`);
        const loss = 1 / (1 + g);
        await opts.onProgress?.({
          epoch: e,
          epochs: E,
          step: s,
          stepsPerEpoch: S,
          progress: g / (E * S),
          loss,
          ...(s === S ? { metrics: { loss } } : {}),
        });
      }
      const tmp = `${ckpt}.tmp`;
      await fs.writeFile(tmp, JSON.stringify({ epoch: e }));
      await fs.rename(tmp, ckpt);
    }
    // Output: a copy of the base model under the new name/version, written to a temp dir + rename.
    const tmpDir = `${opts.outputDir}.tmp-${process.pid}`;
    await fs.rm(tmpDir, { recursive: true, force: true });
    await fs.cp(opts.baseModelDir, tmpDir, { recursive: true });
    const mf = path.join(tmpDir, 'manifest.json');
    const m = JSON.parse(await fs.readFile(mf, 'utf8'));
    const parent = `${m.name}@${m.version}`;
    m.name = opts.name;
    m.version = opts.version;
    m.createdAt = new Date().toISOString();
    m.provenance = {
      ...m.provenance,
      parent,
      dataset: opts.dataset,
      command: 'fake trainer (test)',
    };
    await fs.writeFile(mf, JSON.stringify(m, null, 2));
    await fs.rename(tmpDir, opts.outputDir);
    return {
      modelDir: opts.outputDir,
      metrics: { loss: 1 / (1 + E * S) },
      ...(done > 0 ? { resumedFromEpoch: done } : {}),
    };
  };
}
