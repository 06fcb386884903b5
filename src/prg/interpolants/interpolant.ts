/**
 * Probability paths for flow-matching pretraining (paper §3.1, eq. 2).
 *
 * Time convention (docs/engineering.md): t = 0 is data, t = 1 is noise. Every path here is
 *
 *   x_t = α(t)·x0 + σ(t)·x1 (+ σ_min·ε),     x0 ~ data, x1 ~ N(0, I), ε ~ N(0, I),
 *   u_t = α'(t)·x0 + σ'(t)·x1,
 *
 * u_t being the conditional velocity d x_t / dt that the velocity net v_θ(x_t, t) regresses
 * (flow-matching loss ‖v_θ(x_t, t) − u_t‖², paper eq. 2). Batches are row-major [N, D] (D = C·H·W)
 * with one time per sample, t [N].
 */
import { InterpolantName } from '../manifest';
import { otPairNoise } from '../ot';

export type Batch = Float32Array;

export interface Interpolant {
  readonly name: InterpolantName;
  /** Std of the extra Gaussian noise σ_min·ε added to x_t (ICFM's constant σ); 0 = none. */
  readonly noiseStd: number;
  /** Coefficient of the data x0 in x_t. */
  alpha(t: number): number;
  /** Coefficient of the noise x1 in x_t. */
  sigma(t: number): number;
  /** dα/dt */
  dAlpha(t: number): number;
  /** dσ/dt */
  dSigma(t: number): number;
  /**
   * Reorder the noise batch x1 [n, d] before sampling: identity, except OT-CFM, which pairs by the
   * exact optimal-transport plan. Returns a new array (or x1 itself when the pairing is identity).
   */
  pair(x0: Batch, x1: Batch, n: number, d: number): Batch;
  /** x_t [N, D] for x0, x1 [N, D], t [N]; `eps` [N, D] is required iff noiseStd > 0. */
  sample(x0: Batch, x1: Batch, t: ArrayLike<number>, eps?: Batch): Batch;
  /** u_t = α'(t)·x0 + σ'(t)·x1, [N, D]. */
  targetVelocity(x0: Batch, x1: Batch, t: ArrayLike<number>): Batch;
}

function checkBatch(x0: Batch, x1: Batch, t: ArrayLike<number>, what: string): number {
  if (x0.length !== x1.length)
    throw new Error(`${what}: x0 has ${x0.length} values, x1 has ${x1.length}`);
  const n = t.length;
  if (n === 0 || x0.length % n !== 0)
    throw new Error(`${what}: ${x0.length} values do not split into ${n} samples (t has ${n})`);
  return x0.length / n;
}

/** Shared machinery; a path only supplies its coefficients. */
export abstract class PathInterpolant implements Interpolant {
  abstract readonly name: InterpolantName;
  constructor(readonly noiseStd = 0) {
    if (!(noiseStd >= 0)) throw new Error(`noiseStd must be >= 0, got ${noiseStd}`);
  }
  abstract alpha(t: number): number;
  abstract sigma(t: number): number;
  abstract dAlpha(t: number): number;
  abstract dSigma(t: number): number;

  pair(_x0: Batch, x1: Batch, _n: number, _d: number): Batch {
    return x1;
  }

  sample(x0: Batch, x1: Batch, t: ArrayLike<number>, eps?: Batch): Batch {
    const d = checkBatch(x0, x1, t, `${this.name}.sample`);
    if (this.noiseStd > 0 && (!eps || eps.length !== x0.length))
      throw new Error(`${this.name}.sample: noiseStd ${this.noiseStd} > 0 needs eps [N, D]`);
    const out = new Float32Array(x0.length);
    for (let i = 0; i < t.length; i++) {
      const a = this.alpha(t[i]);
      const s = this.sigma(t[i]);
      for (let k = i * d; k < (i + 1) * d; k++) out[k] = a * x0[k] + s * x1[k];
    }
    if (this.noiseStd > 0 && eps)
      for (let k = 0; k < out.length; k++) out[k] += this.noiseStd * eps[k];
    return out;
  }

  targetVelocity(x0: Batch, x1: Batch, t: ArrayLike<number>): Batch {
    const d = checkBatch(x0, x1, t, `${this.name}.targetVelocity`);
    const out = new Float32Array(x0.length);
    for (let i = 0; i < t.length; i++) {
      const da = this.dAlpha(t[i]);
      const ds = this.dSigma(t[i]);
      for (let k = i * d; k < (i + 1) * d; k++) out[k] = da * x0[k] + ds * x1[k];
    }
    return out;
  }
}

/**
 * PRG-ICFM (paper §3.1, after Tong et al. [58]): the straight path
 *   x_t = (1 − t)·x0 + t·x1 (+ σ_min·ε),   u_t = x1 − x0.
 * A constant σ_min does not depend on t, so it leaves u_t unchanged.
 */
export class ICFM extends PathInterpolant {
  readonly name: InterpolantName = 'icfm';
  alpha(t: number): number {
    return 1 - t;
  }
  sigma(t: number): number {
    return t;
  }
  dAlpha(_t: number): number {
    return -1;
  }
  dSigma(_t: number): number {
    return 1;
  }
}

/**
 * PRG-OTCFM (paper §3.1, Tong et al. [58]): ICFM after re-pairing each minibatch (x0 data, x1
 * noise) by the exact optimal-transport plan for squared Euclidean cost. With equal batch sizes
 * and uniform weights that plan is a permutation, solved exactly (src/prg/ot).
 */
export class OTCFM extends ICFM {
  override readonly name: InterpolantName = 'otcfm';
  override pair(x0: Batch, x1: Batch, n: number, d: number): Batch {
    return otPairNoise(x0, x1, n, d);
  }
}

/**
 * PRG-GVP (paper §3.1): the generalized variance-preserving path with triangular coefficients
 *   x_t = cos(πt/2)·x0 + sin(πt/2)·x1,
 *   u_t = −(π/2)·sin(πt/2)·x0 + (π/2)·cos(πt/2)·x1,
 * so α² + σ² = 1 for every t.
 */
export class GVP extends PathInterpolant {
  readonly name: InterpolantName = 'gvp';
  alpha(t: number): number {
    return Math.cos((Math.PI / 2) * t);
  }
  sigma(t: number): number {
    return Math.sin((Math.PI / 2) * t);
  }
  dAlpha(t: number): number {
    return -(Math.PI / 2) * Math.sin((Math.PI / 2) * t);
  }
  dSigma(t: number): number {
    return (Math.PI / 2) * Math.cos((Math.PI / 2) * t);
  }
}
