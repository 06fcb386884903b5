/**
 * Fine-tuning by reversing generation (paper §3.2 "Fine-tuning by Reversing Generation", eq. 3,
 * App. B.1 Tab. 2):
 *   L(θ, φ) = CE_ls(h_φ(features(x_{t*})), y) + λ · L_FM(θ)
 * where x_{t*} is the reverse ODE solved from the image x_0 to t* in K fixed steps, CE_ls is
 * label-smoothing cross-entropy (App. C.1), L_FM the flow-matching loss of eq. 2 on the same
 * images, AdamW with cosine decay and linear warm-up (Tab. 2).
 *
 * Gradients through the solver, two ways that give the same numbers (spec: `gradients.spec.ts`):
 * - direct: one graph = K unrolled solver steps + head + losses, VJP over all of it. Memory holds
 *   every intermediate activation of the K steps at once.
 * - adjoint (discrete adjoint): a forward pass stores only the K + 1 states x_k; the backward walk
 *   feeds a_{k+1} = ∂L/∂x_{k+1} as the cotangent of ONE step graph's VJP, which returns
 *   a_k = ∂L/∂x_k and that step's parameter gradient (accumulated). Memory: O(K · state) plus
 *   one step's activations. This is the exact gradient of the discretised solve (not the
 *   continuous adjoint ODE of torchdiffeq's odeint_adjoint, which differs by discretisation error).
 */
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { Graph } from '../../engine/onnx/types';
import { ParamStore } from '../../engine/runtime/params';
import { SessionOptions } from '../../engine/runtime/session';
import {
  FixedSolverName,
  HEAD_PREFIX,
  bindClassLabel,
  featuresOf,
  namespaced,
  paramNamesOf,
  stepTimes,
  unrollSolve,
  velocityFn,
} from '../features';
import { stepGraph } from '../solvers';
import { GradRunner, ParamSession, specializeBatch } from './grad-runner';
import { RowCache } from './row-cache';
import { mseLoss, smoothedCrossEntropy } from './common';
import type { GradientMode } from './hyperparameters';

export type { GradientMode };

export interface FineTuneGraphConfig {
  batch: number;
  classes: number;
  solver: FixedSolverName;
  steps: number;
  tStar: number;
  pool: number | null;
  /** Weight of the flow-matching term (eq. 3); 0 drops it from the graph. */
  lambdaFlow: number;
  freezeFlow: boolean;
  mode: GradientMode;
}

export interface FineTuneBatch {
  /** Images x_0 [B, C, H, W] in [-1, 1]. */
  x: Float32Array;
  /** Smoothed targets [B, classes]. */
  target: Float32Array;
  /** Flow-matching batch on the same images (needed when lambdaFlow > 0). */
  fm?: { xt: Float32Array; t: Float32Array; ut: Float32Array };
  /** Dataset indices of the images: they key the frozen flow's x_K cache (FineTuneStep). */
  indices?: Int32Array;
}

export interface LossAndGrads {
  loss: number;
  ce: number;
  fm: number;
  /** [B, classes] */
  logits: Float32Array;
  grads: Map<string, Float32Array>;
}

/**
 * Velocity and head graphs, fixed batch, head params renamed `head.*`; and the param list. A
 * class-conditional velocity net gets `label` (its null class) bound in: every training graph
 * calls it with x and t only.
 */
export function prepareNets(velocity: Graph, head: Graph, batch: number, label?: number) {
  const fixed = specializeBatch(velocity, batch);
  const wantsY = fixed.inputs.some((i) => i.name === 'y');
  if (wantsY && label === undefined)
    throw new Error(
      `velocity graph ${velocity.name} takes a class label y: give the label to train with`,
    );
  const v = namespaced(wantsY ? bindClassLabel(fixed, label!) : fixed, 'velocity/');
  const h = namespaced(specializeBatch(head, batch), 'head/', HEAD_PREFIX);
  const velocityParams = paramNamesOf(v);
  const headParams = paramNamesOf(h);
  const clash = headParams.filter((n) => velocityParams.includes(n));
  if (clash.length) throw new Error(`parameter names used by both nets: ${clash.join(', ')}`);
  return { velocity: v, head: h, velocityParams, headParams };
}

/** All trainable parameters of the prepared velocity + head graphs, copied into one store. */
export function paramStoreOf(velocity: Graph, head: Graph): ParamStore {
  const s = new ParamStore();
  for (const g of [velocity, head])
    for (const n of paramNamesOf(g)) {
      const t = g.initializers.get(n)!;
      s.set(n, t.dims, Float32Array.from(t.data as Float32Array));
    }
  return s;
}

function imageShape(velocity: Graph): number[] {
  const x = velocity.inputs.find((i) => i.name === 'x');
  if (!x) throw new Error(`velocity graph ${velocity.name} has no input x`);
  return x.shape as number[];
}

/** CE of head(features(xK)) + optionally λ·FM; returns the loss Value. */
function addLosses(
  b: GraphBuilder,
  head: Graph,
  velocity: Graph,
  xK: Value,
  cfg: FineTuneGraphConfig,
): { loss: Value; logits: Value } {
  const target = b.input('target', [cfg.batch, cfg.classes]);
  const logits = b.call(head, { features: featuresOf(b, xK, cfg.pool) }).logits;
  const ce = b.output(smoothedCrossEntropy(b, logits, target), 'ce');
  let loss = ce;
  if (cfg.lambdaFlow > 0) {
    const shape = imageShape(velocity);
    const xfm = b.input('fm_x', shape);
    const tfm = b.input('fm_t', [cfg.batch]);
    const ufm = b.input('fm_u', shape);
    const fm = b.output(mseLoss(b, b.call(velocity, { x: xfm, t: tfm }).v, ufm), 'fm');
    loss = b.add(ce, b.mul(fm, cfg.lambdaFlow));
  }
  return { loss: b.output(loss, 'loss'), logits: b.output(logits, 'logits') };
}

/** direct: x → K solver steps → head → CE (+ λ FM). */
export function buildDirectGraph(velocity: Graph, head: Graph, cfg: FineTuneGraphConfig): Graph {
  const b = new GraphBuilder('finetune_direct');
  const x = b.input('x', imageShape(velocity));
  const f = velocityFn(b, velocity);
  const states = unrollSolve(b, f, x, {
    solver: cfg.solver,
    steps: cfg.steps,
    t0: 0,
    t1: cfg.tStar,
  });
  addLosses(b, head, velocity, states[states.length - 1], cfg);
  return b.build();
}

/** adjoint, one step: inputs x [B,…], t [B] → x_next = x + h Σ b_i k_i (h = t* / K fixed). */
export function buildStepGraph(velocity: Graph, cfg: FineTuneGraphConfig): Graph {
  const b = new GraphBuilder('finetune_step');
  const x = b.input('x', imageShape(velocity));
  const t = b.input('t', [cfg.batch]);
  const h = cfg.tStar / cfg.steps;
  b.output(stepGraph(b, velocityFn(b, velocity), x, t, h, cfg.solver), 'x_next');
  return b.build();
}

/** adjoint, last part: x_K → head → CE (+ λ FM on its own inputs). */
export function buildHeadLossGraph(velocity: Graph, head: Graph, cfg: FineTuneGraphConfig): Graph {
  const b = new GraphBuilder('finetune_head');
  const xK = b.input('xK', imageShape(velocity));
  addLosses(b, head, velocity, xK, cfg);
  return b.build();
}

export interface FineTuneStepOptions {
  /**
   * With a frozen flow, keep each image's x_K (keyed by FineTuneBatch.indices) after its first
   * solve: the flow's weights do not change, so without augmentation the solve gives the same
   * state every epoch, and a head-only epoch after the first costs only the head (row-cache.ts).
   * Only for unaugmented batches; ignored when the flow trains. A frozen flow in direct mode then
   * takes the adjoint path: with no flow parameter to train, both modes give the head the same
   * gradient (direct mode's one graph would run the solve again every step).
   */
  cacheFrozenStates?: boolean;
}

/**
 * Loss and gradients of eq. 3 for one batch, by either mode. Sessions are created once
 * (parameters are inputs) and reused every step.
 */
export class FineTuneStep {
  private constructor(
    readonly cfg: FineTuneGraphConfig,
    readonly trainable: string[],
    private readonly direct?: GradRunner,
    private readonly adj?: { step?: GradRunner; stepFwd: ParamSession; head: GradRunner },
    /** Frozen flow only: x_K per dataset index (FineTuneStepOptions.cacheFrozenStates). */
    readonly frozenStates?: RowCache,
  ) {}

  static async create(
    velocity: Graph,
    head: Graph,
    cfg: FineTuneGraphConfig,
    session: SessionOptions = {},
    opts: FineTuneStepOptions = {},
  ): Promise<FineTuneStep> {
    const vp = paramNamesOf(velocity);
    const hp = paramNamesOf(head);
    const trainable = cfg.freezeFlow ? hp : [...vp, ...hp];
    if (cfg.freezeFlow && cfg.lambdaFlow > 0)
      throw new Error('freezeFlow with lambdaFlow > 0: the flow term has nothing to train');
    const cacheFrozen = cfg.freezeFlow && opts.cacheFrozenStates === true;
    if (cfg.mode === 'direct' && !cacheFrozen) {
      const g = buildDirectGraph(velocity, head, cfg);
      const live = trainable.filter((n) => g.initializers.has(n));
      const r = await GradRunner.create(g, {
        of: ['loss'],
        seed: 'ones',
        params: live,
        outputs: ['logits', 'ce', ...(cfg.lambdaFlow > 0 ? ['fm'] : [])],
        session,
      });
      return new FineTuneStep(cfg, trainable, r);
    }
    const headG = buildHeadLossGraph(velocity, head, cfg);
    const headParams = trainable.filter((n) => headG.initializers.has(n));
    const headR = await GradRunner.create(headG, {
      of: ['loss'],
      seed: 'ones',
      params: headParams,
      wrtInputs: ['xK'],
      outputs: ['logits', 'ce', ...(cfg.lambdaFlow > 0 ? ['fm'] : [])],
      session,
    });
    const stepG = buildStepGraph(velocity, cfg);
    // A frozen flow never walks back through the steps (run() stops at x_K), so its step VJP is
    // not built: head-only fine-tuning also works on velocity nets with ops that have no rule.
    const stepR = cfg.freezeFlow
      ? undefined
      : await GradRunner.create(stepG, {
          of: ['x_next'],
          seed: 'input',
          params: vp.filter((n) => stepG.initializers.has(n)),
          wrtInputs: ['x'],
          session,
        });
    // Forward-only step: same graph, velocity parameters as inputs (no gradient outputs).
    const fwdParams = vp.filter((n) => stepG.initializers.has(n));
    const fwd = await ParamSession.create(stepG, fwdParams, session);
    const frozenStates = cacheFrozen
      ? new RowCache((imageShape(velocity).slice(1) as number[]).reduce((a, b) => a * b, 1))
      : undefined;
    return new FineTuneStep(
      cfg,
      trainable,
      undefined,
      { step: stepR, stepFwd: fwd, head: headR },
      frozenStates,
    );
  }

  private feedsOf(batch: FineTuneBatch, shape: number[]) {
    const B = this.cfg.batch;
    const feeds: Record<string, { dtype: 'float32'; dims: number[]; data: Float32Array }> = {
      target: { dtype: 'float32', dims: [B, this.cfg.classes], data: batch.target },
    };
    if (this.cfg.lambdaFlow > 0) {
      if (!batch.fm) throw new Error('fine-tune batch: lambdaFlow > 0 needs a flow-matching batch');
      feeds.fm_x = { dtype: 'float32', dims: shape, data: batch.fm.xt };
      feeds.fm_t = { dtype: 'float32', dims: [B], data: batch.fm.t };
      feeds.fm_u = { dtype: 'float32', dims: shape, data: batch.fm.ut };
    }
    return feeds;
  }

  async run(params: ParamStore, batch: FineTuneBatch, imageDims: number[]): Promise<LossAndGrads> {
    const B = this.cfg.batch;
    const shape = [B, ...imageDims];
    const common = this.feedsOf(batch, shape);
    const x = { dtype: 'float32' as const, dims: shape, data: batch.x };
    const grads = new Map<string, Float32Array>();
    for (const n of this.trainable) grads.set(n, new Float32Array(params.get(n).data.length));
    const accumulate = (g: Map<string, Float32Array>) => {
      for (const [n, v] of g) {
        const acc = grads.get(n);
        if (!acc) continue;
        for (let i = 0; i < v.length; i++) acc[i] += v[i];
      }
    };
    if (this.direct) {
      const r = await this.direct.run(params, { x, ...common });
      accumulate(r.grads);
      return this.result(r.out, grads);
    }
    const adj = this.adj!;
    const ts = stepTimes(0, this.cfg.tStar, this.cfg.steps);
    const tvec = (k: number) => ({
      dtype: 'float32' as const,
      dims: [B],
      data: new Float32Array(B).fill(ts[k]),
    });
    const cached = batch.indices && this.frozenStates?.gather(batch.indices);
    // Forward: keep the K + 1 states only (a cached x_K stands for a frozen flow's whole solve).
    const states: Float32Array[] = [batch.x];
    for (let k = 0; !cached && k < this.cfg.steps; k++) {
      const r = await adj.stepFwd.run(params, {
        x: { dtype: 'float32', dims: shape, data: states[k] },
        t: tvec(k),
      });
      states.push(r.x_next.data as Float32Array);
    }
    const xK = cached || states[this.cfg.steps];
    if (!cached && batch.indices) this.frozenStates?.setBatch(batch.indices, xK);
    // Head and losses at x_K, then walk back through the steps.
    const hr = await adj.head.run(params, {
      xK: { dtype: 'float32', dims: shape, data: xK },
      ...common,
    });
    let a = hr.grads.get('xK')!;
    hr.grads.delete('xK');
    accumulate(hr.grads);
    // A frozen flow has no parameter gradient to collect on the way back: the step costs one
    // forward solve (the head phase of "auto" jobs, hyperparameters.ts).
    if (this.cfg.freezeFlow) return this.result(hr.out, grads);
    for (let k = this.cfg.steps - 1; k >= 0; k--) {
      const r = await adj.step!.run(params, {
        x: { dtype: 'float32', dims: shape, data: states[k] },
        t: tvec(k),
        grad_x_next: { dtype: 'float32', dims: shape, data: a },
      });
      a = r.grads.get('x')!;
      r.grads.delete('x');
      accumulate(r.grads);
    }
    return this.result(hr.out, grads);
  }

  private result(out: Record<string, { data: unknown }>, grads: Map<string, Float32Array>) {
    return {
      loss: Number((out.loss?.data as Float32Array | undefined)?.[0] ?? NaN),
      ce: Number((out.ce.data as Float32Array)[0]),
      fm: out.fm ? Number((out.fm.data as Float32Array)[0]) : 0,
      logits: out.logits.data as Float32Array,
      grads,
    };
  }

  async release(): Promise<void> {
    await this.direct?.release();
    if (this.adj) {
      await this.adj.step?.release();
      await this.adj.stepFwd.release();
      await this.adj.head.release();
    }
  }
}
