/**
 * The data of a fine-tune run: the training set and the optional held-out set, both in the base
 * model's input shape (converted when `allowResize`).
 */
import { ImageDataset } from '../data';
import { ModelManifest } from '../manifest';
import { loadDatasetFor } from './evaluate';

export interface FineTuneDataOptions {
  /** Dataset spec (src/prg/data), loaded unless `data` is given (then only recorded). */
  dataset: string;
  data?: ImageDataset;
  evalDataset?: string;
  evalData?: ImageDataset;
  limit?: number;
  evalLimit?: number;
}

export interface FineTuneData {
  train: ImageDataset;
  /** Held-out split: evaluated every epoch and recorded in the manifest. */
  eval?: ImageDataset;
}

export async function loadFineTuneData(
  o: FineTuneDataOptions,
  base: ModelManifest,
  allowResize: boolean,
): Promise<FineTuneData> {
  const train = o.data ?? (await loadDatasetFor(o.dataset, base, { limit: o.limit, allowResize }));
  const evalSet =
    o.evalData ??
    (o.evalDataset
      ? await loadDatasetFor(o.evalDataset, base, { limit: o.evalLimit, allowResize })
      : undefined);
  return { train, eval: evalSet };
}
