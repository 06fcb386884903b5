/**
 * Optimizers over a ParamStore, in plain loops over Float32Array (state in float32, arithmetic
 * in float64 per element). Update rules follow the PyTorch definitions so results can be checked
 * against them:
 *
 * - Adam (Kingma & Ba 2015): g ← g + λθ (L2, coupled); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
 *   θ ← θ − lr · m/(1−β₁ᵗ) / (√v/√(1−β₂ᵗ) + ε).
 * - AdamW (Loshchilov & Hutter 2019): as Adam without the L2 term, plus decoupled decay
 *   θ ← θ(1 − lr·λ) before the Adam step. The paper's fine-tuning uses AdamW with ε = 1e-8,
 *   β = (0.9, 0.999), λ = 0.05 (App. B.1, Tab. 2); pre-training uses Adam (Tab. 1).
 * - SGD with momentum μ, dampening d, optional Nesterov: g ← g + λθ; b ← g at the first step,
 *   else b ← μb + (1−d)g; g ← g + μb (Nesterov) or b; θ ← θ − lr·g.
 */
import { GradMap, Param, ParamStore, checkGrads } from './params';

export type OptimizerKind = 'adam' | 'adamw' | 'sgd';

/** Everything needed to resume an optimizer (checkpoints store it). */
export interface OptimizerState {
  kind: OptimizerKind;
  /** Steps taken so far (t in the bias corrections). */
  step: number;
  hyper: Record<string, number | boolean>;
  /** `<slot>/<param name>` → values, e.g. `exp_avg/fc1.weight`. */
  slots: Map<string, Float32Array>;
}

export interface Optimizer {
  readonly kind: OptimizerKind;
  readonly stepCount: number;
  /** One update of every parameter in `params` with its gradient, at learning rate `lr`. */
  step(params: ParamStore, grads: GradMap, lr: number): void;
  state(): OptimizerState;
  loadState(s: OptimizerState): void;
}

/** Which parameters get weight decay (default: all, as in PyTorch). */
export type DecayFilter = (p: Param) => boolean;

/** Common choice (timm, DeiT): no decay on biases and norm scales, i.e. tensors of rank ≤ 1. */
export const decayMatricesOnly: DecayFilter = (p) => p.dims.length > 1;

export interface AdamOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  decayFilter?: DecayFilter;
}

export interface SgdOptions {
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
  decayFilter?: DecayFilter;
}

function checkLr(lr: number, who: string): void {
  if (!Number.isFinite(lr) || lr < 0) throw new Error(`${who}: learning rate ${lr} is not >= 0`);
}

/** Per-parameter state arrays, created at zero on first use. */
class Slots {
  readonly map = new Map<string, Float32Array>();
  constructor(readonly names: string[]) {}
  get(slot: string, p: Param): Float32Array {
    const key = `${slot}/${p.name}`;
    let a = this.map.get(key);
    if (!a) {
      a = new Float32Array(p.data.length);
      this.map.set(key, a);
    } else if (a.length !== p.data.length)
      throw new Error(
        `optimizer state ${key} has ${a.length} values, parameter has ${p.data.length}`,
      );
    return a;
  }
  load(m: Map<string, Float32Array>): void {
    this.map.clear();
    for (const [k, v] of m) {
      const slot = k.slice(0, k.indexOf('/'));
      if (!this.names.includes(slot))
        throw new Error(`optimizer state ${k}: unknown slot (have ${this.names.join(', ')})`);
      this.map.set(k, v.slice());
    }
  }
  copy(): Map<string, Float32Array> {
    return new Map([...this.map].map(([k, v]) => [k, v.slice()]));
  }
}

class AdamBase implements Optimizer {
  private t = 0;
  private readonly slots = new Slots(['exp_avg', 'exp_avg_sq']);
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decayFilter: DecayFilter;

  constructor(
    readonly kind: 'adam' | 'adamw',
    o: AdamOptions,
    defaultDecay: number,
  ) {
    [this.beta1, this.beta2] = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? defaultDecay;
    this.decayFilter = o.decayFilter ?? (() => true);
    for (const [k, v] of [
      ['beta1', this.beta1],
      ['beta2', this.beta2],
    ] as const)
      if (!(v >= 0 && v < 1)) throw new Error(`${kind}: ${k}=${v} must be in [0, 1)`);
    if (!(this.eps > 0)) throw new Error(`${kind}: eps=${this.eps} must be > 0`);
    if (!(this.weightDecay >= 0))
      throw new Error(`${kind}: weightDecay=${this.weightDecay} must be >= 0`);
  }

  get stepCount(): number {
    return this.t;
  }

  step(params: ParamStore, grads: GradMap, lr: number): void {
    checkLr(lr, this.kind);
    checkGrads(params, grads, this.kind);
    this.t++;
    const { beta1: b1, beta2: b2, eps } = this;
    const stepSize = lr / (1 - b1 ** this.t);
    const sqrtBc2 = Math.sqrt(1 - b2 ** this.t);
    const decoupled = this.kind === 'adamw';
    for (const p of params) {
      const g = grads.get(p.name) as Float32Array;
      const m = this.slots.get('exp_avg', p);
      const v = this.slots.get('exp_avg_sq', p);
      const w = p.data;
      const wd = this.decayFilter(p) ? this.weightDecay : 0;
      const shrink = decoupled ? 1 - lr * wd : 1;
      const l2 = decoupled ? 0 : wd;
      for (let i = 0; i < w.length; i++) {
        let wi = w[i];
        const gi = g[i] + l2 * wi;
        wi *= shrink;
        const mi = b1 * m[i] + (1 - b1) * gi;
        const vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
      }
    }
  }

  state(): OptimizerState {
    return {
      kind: this.kind,
      step: this.t,
      hyper: {
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: this.weightDecay,
      },
      slots: this.slots.copy(),
    };
  }

  loadState(s: OptimizerState): void {
    if (s.kind !== this.kind) throw new Error(`${this.kind}: cannot load ${s.kind} state`);
    this.slots.load(s.slots);
    this.t = s.step;
  }
}

export class Adam extends AdamBase {
  constructor(o: AdamOptions = {}) {
    super('adam', o, 0);
  }
}

export class AdamW extends AdamBase {
  /** weightDecay defaults to 0.01 as in PyTorch; the paper's fine-tuning uses 0.05. */
  constructor(o: AdamOptions = {}) {
    super('adamw', o, 0.01);
  }
}

export class Sgd implements Optimizer {
  readonly kind = 'sgd';
  private t = 0;
  private readonly slots = new Slots(['momentum_buffer']);
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  private readonly decayFilter: DecayFilter;

  constructor(o: SgdOptions = {}) {
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.nesterov = o.nesterov ?? false;
    this.weightDecay = o.weightDecay ?? 0;
    this.decayFilter = o.decayFilter ?? (() => true);
    if (!(this.momentum >= 0)) throw new Error(`sgd: momentum=${this.momentum} must be >= 0`);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0))
      throw new Error('sgd: nesterov needs momentum > 0 and dampening 0');
  }

  get stepCount(): number {
    return this.t;
  }

  step(params: ParamStore, grads: GradMap, lr: number): void {
    checkLr(lr, 'sgd');
    checkGrads(params, grads, 'sgd');
    const first = this.t === 0;
    this.t++;
    const mu = this.momentum;
    const damp = 1 - this.dampening;
    for (const p of params) {
      const g = grads.get(p.name) as Float32Array;
      const w = p.data;
      const wd = this.decayFilter(p) ? this.weightDecay : 0;
      if (mu === 0) {
        for (let i = 0; i < w.length; i++) w[i] -= lr * (g[i] + wd * w[i]);
        continue;
      }
      const buf = this.slots.get('momentum_buffer', p);
      for (let i = 0; i < w.length; i++) {
        const gi = g[i] + wd * w[i];
        const bi = first ? gi : mu * buf[i] + damp * gi;
        buf[i] = bi;
        w[i] -= lr * (this.nesterov ? gi + mu * bi : bi);
      }
    }
  }

  state(): OptimizerState {
    return {
      kind: 'sgd',
      step: this.t,
      hyper: {
        momentum: this.momentum,
        dampening: this.dampening,
        nesterov: this.nesterov,
        weightDecay: this.weightDecay,
      },
      slots: this.slots.copy(),
    };
  }

  loadState(s: OptimizerState): void {
    if (s.kind !== 'sgd') throw new Error(`sgd: cannot load ${s.kind} state`);
    this.slots.load(s.slots);
    this.t = s.step;
  }
}

/** Global L2 norm over all gradients (float64 accumulation). */
export function globalNorm(grads: GradMap): number {
  let s = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/**
 * Clip gradients in place by global norm, as torch.nn.utils.clip_grad_norm_: when the norm
 * exceeds maxNorm, scale every gradient by maxNorm / (norm + 1e-6). Returns the norm before
 * clipping. A non-finite norm is an error (a NaN step would silently ruin the parameters).
 */
export function clipGradNorm(grads: GradMap, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm=${maxNorm} must be > 0`);
  const norm = globalNorm(grads);
  if (!Number.isFinite(norm)) throw new Error(`clipGradNorm: gradient norm is ${norm}`);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] *= coef;
  return norm;
}
