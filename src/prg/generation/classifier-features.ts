/**
 * The feature space of the sample-quality figure: a classifier trained in this project (e.g. the
 * shipped models/prg-mnist), read at its head's hidden tanh layer — the penultimate layer of the
 * two-layer MLP head (paper §3.1 "Classifier Design") on the classifier's own reverse-process
 * features x_{t*}. The FID computed there is named after it ("FID in PRG-MNIST classifier
 * features"), never "FID", which means Inception-v3 features on natural images.
 */
import { GraphSession } from '../../engine/runtime/session';
import { PrgModel, loadPrgModel } from '../inference';
import { headHiddenGraph } from '../ood/head-hidden';

export class ClassifierFeatures {
  private constructor(
    private readonly model: PrgModel,
    private readonly hidden: GraphSession,
    readonly dim: number,
  ) {}

  static async load(dir: string, opts: { threads?: number } = {}): Promise<ClassifierFeatures> {
    const model = await loadPrgModel(dir, { threads: opts.threads });
    try {
      const g = headHiddenGraph(model.head);
      const dim = Number(g.outputs[0].shape[1]);
      return new ClassifierFeatures(model, await GraphSession.create(g, opts), dim);
    } catch (e) {
      await model.release();
      throw e;
    }
  }

  /** "PRG-MNIST classifier features (prg-mnist@4, head tanh layer, 256-d)". */
  get name(): string {
    const m = this.model.manifest;
    return `${m.name.toUpperCase().replace(/^PRG-/, 'PRG-')} classifier features (${this.model.id}, head tanh layer, ${this.dim}-d)`;
  }

  get id(): string {
    return this.model.id;
  }

  /** Hidden-layer features [n, dim] of images [n, C, H, W] in the model's input space. */
  async of(images: Float32Array, n: number, batchSize = 64): Promise<Float32Array> {
    const per = images.length / n;
    const out = new Float32Array(n * this.dim);
    for (let s = 0; s < n; s += batchSize) {
      const m = Math.min(batchSize, n - s);
      const f = await this.model.features({ data: images.slice(s * per, (s + m) * per), n: m });
      const h = await this.hidden.run({
        features: { dtype: 'float32', dims: [m, f.data.length / m], data: f.data },
      });
      out.set(h.hidden.data as Float32Array, s * this.dim);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.hidden.release();
    await this.model.release();
  }
}
