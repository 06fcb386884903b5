/**
 * Flow-matching probability paths (paper §3.1) and the per-step training batch built from them.
 */
import { InterpolantName } from '../manifest';
import { Rng } from '../rng';
import { Batch, GVP, ICFM, Interpolant, OTCFM, PathInterpolant } from './interpolant';

export { GVP, ICFM, OTCFM, PathInterpolant };
export type { Batch, Interpolant };

export const INTERPOLANT_NAMES: readonly InterpolantName[] = ['icfm', 'otcfm', 'gvp'];

export interface InterpolantOptions {
  /** σ_min for ICFM/OTCFM (extra Gaussian noise on x_t); default 0. Not used by GVP. */
  noiseStd?: number;
}

/** The interpolant named in a manifest or on the command line. */
export function makeInterpolant(name: string, opts: InterpolantOptions = {}): Interpolant {
  switch (name) {
    case 'icfm':
      return new ICFM(opts.noiseStd ?? 0);
    case 'otcfm':
      return new OTCFM(opts.noiseStd ?? 0);
    case 'gvp':
      if (opts.noiseStd) throw new Error('gvp: noiseStd is not defined for this path');
      return new GVP();
    default:
      throw new Error(`unknown interpolant "${name}" (use ${INTERPOLANT_NAMES.join(', ')})`);
  }
}

export interface FlowMatchingBatch {
  /** Noise paired with x0 (after OT re-pairing for OT-CFM), [N, D]. */
  x1: Batch;
  /** Per-sample times [N]. */
  t: Float32Array;
  /** x_t [N, D], the velocity net's input. */
  xt: Batch;
  /** u_t [N, D], the regression target. */
  ut: Batch;
}

export interface FlowMatchingBatchOptions {
  /** Times are drawn U[tMin, tMax] (default [0, 1]). */
  tMin?: number;
  tMax?: number;
  /** Fixed times instead of sampling (tests, evaluation). */
  t?: ArrayLike<number>;
}

/**
 * One flow-matching training batch (paper eq. 2) for data x0 [n, D]: draw x1 ~ N(0, I), pair it
 * (OT-CFM), draw t ~ U[tMin, tMax] per sample, build x_t and u_t. Random draws, in order:
 * x1 (n·D normals), t (n uniforms), then ε (n·D normals) iff noiseStd > 0.
 */
export function flowMatchingBatch(
  interp: Interpolant,
  x0: Batch,
  n: number,
  rng: Rng,
  opts: FlowMatchingBatchOptions = {},
): FlowMatchingBatch {
  if (n <= 0 || x0.length % n !== 0)
    throw new Error(`flowMatchingBatch: ${x0.length} values do not split into ${n} samples`);
  const d = x0.length / n;
  const noise = rng.fillNormal(new Float32Array(x0.length));
  const x1 = interp.pair(x0, noise, n, d);
  const t = new Float32Array(n);
  if (opts.t) {
    if (opts.t.length !== n) throw new Error(`flowMatchingBatch: ${opts.t.length} times for ${n}`);
    t.set(Array.from(opts.t));
  } else {
    const lo = opts.tMin ?? 0;
    const hi = opts.tMax ?? 1;
    if (!(lo >= 0 && hi <= 1 && lo <= hi)) throw new Error(`flowMatchingBatch: bad t range`);
    rng.fillUniform(t, lo, hi);
  }
  const eps = interp.noiseStd > 0 ? rng.fillNormal(new Float32Array(x0.length)) : undefined;
  return { x1, t, xt: interp.sample(x0, x1, t, eps), ut: interp.targetVelocity(x0, x1, t) };
}
