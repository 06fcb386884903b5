/**
 * Exponential moving average of parameters, kept during pre-training and used for sampling and
 * feature extraction (the usual practice for flow / diffusion models, e.g. torchcfm's
 * `ema_decay` = 0.9999): shadow ← d·shadow + (1 − d)·θ after every optimizer step.
 * With `warmup`, d_n = min(decay, (1 + n)/(10 + n)) so early shadows are not dominated by the
 * random initialisation (TensorFlow's ExponentialMovingAverage with num_updates).
 */
import { ParamStore } from './params';

export interface EmaOptions {
  decay?: number;
  warmup?: boolean;
}

export class Ema {
  readonly shadow: ParamStore;
  readonly decay: number;
  readonly warmup: boolean;
  private n = 0;

  constructor(params: ParamStore, o: EmaOptions = {}) {
    this.decay = o.decay ?? 0.9999;
    this.warmup = o.warmup ?? false;
    if (!(this.decay >= 0 && this.decay <= 1))
      throw new Error(`Ema: decay=${this.decay} must be in [0, 1]`);
    this.shadow = params.clone();
  }

  /** Updates taken so far. */
  get updates(): number {
    return this.n;
  }

  /** The decay the next update will use. */
  currentDecay(): number {
    return this.warmup ? Math.min(this.decay, (1 + this.n) / (10 + this.n)) : this.decay;
  }

  update(params: ParamStore): void {
    const d = this.currentDecay();
    const c = 1 - d;
    for (const s of this.shadow) {
      const p = params.get(s.name).data;
      const a = s.data;
      if (p.length !== a.length) throw new Error(`Ema: ${s.name} changed size`);
      for (let i = 0; i < a.length; i++) a[i] = d * a[i] + c * p[i];
    }
    this.n++;
  }

  /** Overwrite `params` with the averaged values (e.g. before export). */
  copyTo(params: ParamStore): void {
    params.copyFrom(this.shadow);
  }

  /** Resume: shadow values and the update count (checkpoints). */
  load(shadow: ParamStore, updates: number): void {
    this.shadow.copyFrom(shadow);
    this.n = updates;
  }
}
