/**
 * Warm-up tuning of a model's run size: classify blank batches at each power-of-two size up to
 * MAX_BATCH. The model builds one graph + ORT session per batch size, and that cost belongs here,
 * not in the first requests. Each size is timed (best of several runs) and the size with the
 * lowest time per image is the run size: past some size a bigger batch costs more per image
 * (activations fall out of cache), so the batcher never hands the model more than that.
 */
import { imageInput } from '../../prg/manifest';
import { PrgModelApi } from '../../prg/inference-api';

export interface RunSizeTuning {
  runSize: number;
  /** ms per image by batch size */
  perImage: Record<number, number>;
}

export async function tuneRunSize(m: PrgModelApi, maxBatch: number): Promise<RunSizeTuning> {
  const sizes: number[] = [];
  for (let n = 1; n < maxBatch; n *= 2) sizes.push(n);
  sizes.push(maxBatch);
  const { channels, height, width } = imageInput(m.manifest);
  // Time what a served classify runs: the logits and the model's primary OOD score.
  const served = m.manifest.ood ? { ood: [m.manifest.ood.primary] } : {};
  const perImage: Record<number, number> = {};
  for (const n of sizes) {
    const batch = { data: new Float32Array(n * channels * height * width), n };
    await m.classify(batch, served);
    if (m.manifest.ood) await m.oodScores(batch);
    // Best of several runs covering ≥ 64 images: on a shared machine single runs are noisy.
    let best = Infinity;
    for (let r = 0; r < Math.max(3, Math.ceil(64 / n)); r++) {
      const t0 = performance.now();
      await m.classify(batch, served);
      best = Math.min(best, performance.now() - t0);
    }
    perImage[n] = best / n;
  }
  const runSize = sizes.reduce((a, b) => (perImage[b] < perImage[a] ? b : a));
  return { runSize, perImage };
}
