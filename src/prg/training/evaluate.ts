/**
 * Accuracy of a loaded model on a labelled dataset (the number `prg eval` prints and fine-tuning
 * records in the manifest), plus the dataset-to-model plumbing both need: label mapping by class
 * name and resizing to the model's input shape.
 */
import { ImageDataset, ImageShape, convertDataset, loadDataset } from '../data';
import { PrgModelApi, SolveOptions } from '../inference-api';
import { ModelManifest, imageInput } from '../manifest';

/** Map dataset labels onto the model's class indices by name; throws on a class it lacks. */
export function labelMap(ds: ImageDataset, modelClasses: readonly string[]): Int32Array {
  const idx = new Map(modelClasses.map((c, i) => [c, i]));
  const map = new Int32Array(ds.classes.length);
  ds.classes.forEach((c, i) => {
    const j = idx.get(c);
    if (j === undefined)
      throw new Error(
        `dataset ${ds.source}: class "${c}" is not a class of the model (${modelClasses.join(', ')})`,
      );
    map[i] = j;
  });
  return map;
}

/** The images a model takes (the VAE stage's input for latent models with one). */
export function modelShape(m: ModelManifest): ImageShape {
  const img = imageInput(m);
  return [img.channels, img.height, img.width];
}

/**
 * Load `spec` for a model: same shape as the model's input (converted with sharp when it differs
 * and `allowResize`), else a clear error.
 */
export async function loadDatasetFor(
  spec: string,
  m: ModelManifest,
  o: { limit?: number; allowResize?: boolean } = {},
): Promise<ImageDataset> {
  const want = modelShape(m);
  let ds = await loadDataset(spec, { limit: o.limit });
  if (ds.shape.join() !== want.join()) {
    if (!o.allowResize)
      throw new Error(
        `dataset ${spec} has images of ${ds.shape.join('×')}, the model takes ${want.join('×')} ` +
          '(allow resizing to convert them)',
      );
    ds = await convertDataset(ds, want);
  }
  return ds;
}

export interface EvalResult {
  accuracy: number;
  n: number;
  correct: number;
  /** Mean label-smoothing-free cross-entropy of the true class. */
  nll: number;
  perClassAccuracy: Record<string, number>;
  seconds: number;
}

export async function evaluateModel(
  model: PrgModelApi,
  ds: ImageDataset,
  o: SolveOptions & { batchSize?: number; onBatch?: (done: number, total: number) => void } = {},
): Promise<EvalResult> {
  const started = Date.now();
  const classes = model.manifest.classes;
  const map = labelMap(ds, classes);
  const [c, h, w] = ds.shape;
  const d = c * h * w;
  const bs = o.batchSize ?? 64;
  let correct = 0;
  let nll = 0;
  const hit = new Float64Array(classes.length);
  const count = new Float64Array(classes.length);
  for (let start = 0; start < ds.n; start += bs) {
    const n = Math.min(bs, ds.n - start);
    const x = new Float32Array(n * d);
    const px = ds.images.subarray(start * d, (start + n) * d);
    for (let i = 0; i < x.length; i++) x[i] = px[i] / 127.5 - 1;
    const out = await model.classify({ data: x, n }, { steps: o.steps, solver: o.solver });
    const k = out.classes;
    for (let i = 0; i < n; i++) {
      const y = map[ds.labels[start + i]];
      let best = 0;
      for (let j = 1; j < k; j++)
        if (out.probabilities[i * k + j] > out.probabilities[i * k + best]) best = j;
      count[y]++;
      if (best === y) {
        correct++;
        hit[y]++;
      }
      nll -= Math.log(Math.max(out.probabilities[i * k + y], 1e-12));
    }
    o.onBatch?.(start + n, ds.n);
  }
  const perClassAccuracy: Record<string, number> = {};
  classes.forEach((name, j) => {
    if (count[j]) perClassAccuracy[name] = hit[j] / count[j];
  });
  return {
    accuracy: ds.n ? correct / ds.n : NaN,
    n: ds.n,
    correct,
    nll: ds.n ? nll / ds.n : NaN,
    perClassAccuracy,
    seconds: (Date.now() - started) / 1000,
  };
}
