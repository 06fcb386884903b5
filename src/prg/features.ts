/**
 * The reverse process as a graph (paper §3.1 "Pretrained Reversible Generation"): starting from
 * the image x_0 (t = 0), integrate dx/dt = v_θ(x, t) toward noise up to t*, then turn x_{t*} into
 * the head's input (flatten, or adaptive-average-pool each channel to n×n) and apply the head.
 *
 * Fixed-step solvers are unrolled (src/prg/solvers integrateGraph): each of the K steps inlines
 * the velocity net (builder.call, parameters shared by name), so one ORT session runs the whole reverse process, and the
 * autodiff can differentiate through it (fine-tuning's `direct` mode).
 *
 * Graph composition rules used here:
 * - Non-parameter initializers (builder constants like `scalar_3`) of the velocity net and head
 *   are renamed under a prefix before inlining: two graphs built separately can both hold a
 *   `scalar_3` with different values, and builder.call shares initializers by name.
 * - Head parameters are renamed `head.<name>` in combined graphs, so they never clash with the
 *   velocity net's (`HEAD_PREFIX`); training maps them back when writing head.onnx.
 */
import { GraphBuilder, Value } from '../engine/onnx/builder';
import { decodeModel, encodeModel, planExternalData } from '../engine/onnx/proto';
import { Graph, Tensor, ValueInfo } from '../engine/onnx/types';
import { poolFeatures } from './heads/pool';
import { FIXED_SOLVER_NAMES, FixedSolverName } from './manifest';
import { GraphVelocity, integrateGraph } from './solvers';

export type { FixedSolverName };

export function isFixedSolver(s: string): s is FixedSolverName {
  return (FIXED_SOLVER_NAMES as readonly string[]).includes(s);
}

export const HEAD_PREFIX = 'head.';

/**
 * Trainable parameters of a velocity net or head graph: the `prg.params` metadata when present
 * (JSON list), else every float32 initializer with a dotted name. The nets name parameters
 * `module.sub.weight`; builder constants are `base_<n>` and never contain a dot.
 */
export function paramNamesOf(g: Graph): string[] {
  const meta = g.metadata?.['prg.params'];
  if (meta) {
    const names = JSON.parse(meta) as unknown;
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))
      throw new Error(`graph ${g.name}: metadata prg.params is not a list of names`);
    for (const n of names)
      if (!g.initializers.has(n))
        throw new Error(`graph ${g.name}: prg.params lists ${n}, which is not an initializer`);
    return names as string[];
  }
  return [...g.initializers]
    .filter(([k, t]) => t.dtype === 'float32' && k.includes('.'))
    .map(([k]) => k);
}

/** Record the parameter list in the graph's metadata (written to ONNX metadata_props). */
export function withParamNames(g: Graph, names: readonly string[]): Graph {
  return { ...g, metadata: { ...(g.metadata ?? {}), 'prg.params': JSON.stringify(names) } };
}

/**
 * Rename initializers: `rename(name)` returns the new name or undefined to keep it. Nodes,
 * values and metadata `prg.params` follow.
 */
export function renameInitializers(g: Graph, rename: (n: string) => string | undefined): Graph {
  const map = new Map<string, string>();
  for (const k of g.initializers.keys()) {
    const r = rename(k);
    if (r !== undefined && r !== k) map.set(k, r);
  }
  if (!map.size) return g;
  const nm = (n: string) => map.get(n) ?? n;
  const initializers = new Map<string, Tensor>();
  for (const [k, t] of g.initializers) initializers.set(nm(k), t);
  const values = new Map<string, ValueInfo>();
  for (const [k, v] of g.values) values.set(nm(k), { ...v, name: nm(k) });
  const metadata = { ...(g.metadata ?? {}) };
  if (metadata['prg.params'])
    metadata['prg.params'] = JSON.stringify(
      (JSON.parse(metadata['prg.params']) as string[]).map(nm),
    );
  return {
    ...g,
    initializers,
    values,
    metadata,
    nodes: g.nodes.map((n) => ({ ...n, inputs: n.inputs.map(nm), outputs: [...n.outputs] })),
  };
}

/**
 * Prepare a graph for inlining: constants get `constPrefix`, parameters `paramPrefix` (default
 * none). The prefixes keep graphs built by different builders from sharing constants by accident.
 */
export function namespaced(g: Graph, constPrefix: string, paramPrefix = ''): Graph {
  const params = new Set(paramNamesOf(g));
  const out = renameInitializers(g, (n) =>
    params.has(n) ? (paramPrefix ? paramPrefix + n : undefined) : constPrefix + n,
  );
  return withParamNames(
    out,
    paramNamesOf(g).map((n) => paramPrefix + n),
  );
}

/**
 * v_θ(x, t) as graph code, by inlining `velocity` (inputs x [N,C,H,W], t [N]; output v). A
 * class-conditional net (input y) reads the label `y` at every step.
 */
export function velocityFn(b: GraphBuilder, velocity: Graph, y?: Value): GraphVelocity {
  const wantsY = velocity.inputs.some((i) => i.name === 'y');
  if (wantsY && !y) throw new Error(`velocity graph ${velocity.name} takes a class label y`);
  return (x, t) => b.call(velocity, wantsY ? { x, t, y: y! } : { x, t }).v;
}

/** For a class-conditional velocity net: the graph input `y` (int64 [batch]); else undefined. */
export function labelInput(b: GraphBuilder, velocity: Graph, batch?: number): Value | undefined {
  const y = velocity.inputs.find((i) => i.name === 'y');
  return y ? b.input('y', [batch ?? y.shape[0]], 'int64') : undefined;
}

/**
 * A class-conditional velocity graph of fixed batch with its label fixed to `label` (inputs x and
 * t only), for the graphs fine-tuning differentiates: training runs the net as features are
 * served by default, on the null class. Parameters keep their names. Unconditional graphs pass.
 */
export function bindClassLabel(velocity: Graph, label: number): Graph {
  const y = velocity.inputs.find((i) => i.name === 'y');
  if (!y) return velocity;
  const n = y.shape[0];
  if (typeof n !== 'number')
    throw new Error(`bindClassLabel: ${velocity.name} needs a fixed batch (specializeBatch first)`);
  const b = new GraphBuilder(velocity.name);
  const feeds: Record<string, Value> = {};
  for (const inp of velocity.inputs)
    if (inp.name !== 'y') feeds[inp.name] = b.input(inp.name, inp.shape, inp.dtype);
  feeds.y = b.const(
    { dtype: 'int64', dims: [n], data: new BigInt64Array(n).fill(BigInt(label)) },
    'class_label',
  );
  b.output(b.call(velocity, feeds, { prefix: 'conditional' }).v, 'v');
  return withParamNames(b.build(), paramNamesOf(velocity));
}

/** Step times of a fixed-step solve, as the solver module's integrateGraph lays them out. */
export function stepTimes(t0: number, t1: number, steps: number): number[] {
  const h = (t1 - t0) / steps;
  return Array.from({ length: steps + 1 }, (_, k) => (k === steps ? t1 : t0 + k * h));
}

export interface UnrollOptions {
  solver: FixedSolverName;
  steps: number;
  t0: number;
  t1: number;
}

/** K unrolled steps (src/prg/solvers integrateGraph); returns every state x_{t_0..t_K}. */
export function unrollSolve(
  b: GraphBuilder,
  f: GraphVelocity,
  x0: Value,
  o: UnrollOptions,
): Value[] {
  checkSolve(o.solver, o.steps, o.t0, o.t1);
  const r = integrateGraph(b, f, x0, { ...o, trajectory: true });
  return r.xs!;
}

export function checkSolve(solver: string, steps: number, t0: number, t1: number): void {
  if (!isFixedSolver(solver))
    throw new Error(`solver ${solver}: graph solvers are ${FIXED_SOLVER_NAMES.join(', ')}`);
  if (!Number.isInteger(steps) || steps < 1 || steps > 1000)
    throw new Error(`steps=${steps}: use an integer in [1, 1000]`);
  if (!(t0 >= 0 && t1 <= 1 && t1 > t0))
    throw new Error(`t range [${t0}, ${t1}] must lie in [0, 1]`);
}

/** x_t [N, C, H, W] → head input [N, D]: flatten (pool null) or adaptive-avg-pool to n×n. */
export function featuresOf(b: GraphBuilder, xt: Value, pool: number | null): Value {
  if (pool === null) return b.flatten(xt, 1);
  return poolFeatures(b, xt, pool);
}

export interface FeatureGraphOptions {
  solver: FixedSolverName;
  steps: number;
  /** End time t* (the solve starts at the image, t = 0). */
  tStar: number;
  pool: number | null;
  /** With a head: outputs logits and probabilities too. */
  head?: Graph;
  /**
   * Fixed batch size (default symbolic N). Prefer a number for unrolled graphs: ORT's load time
   * grows quadratically with the node count when the batch dim is symbolic (measured: 16 inlined
   * tiny U-Nets load in 2.4 s with N, 0.1 s with a fixed batch), linearly when it is fixed.
   */
  batch?: number;
}

/**
 * Inference graph: input `x` [N, C, H, W] (and `y` [N] int64 for a class-conditional net); outputs `features` [N, D] and, with a head,
 * `logits` and `probabilities` [N, classes].
 */
export function buildFeatureGraph(velocity: Graph, o: FeatureGraphOptions): Graph {
  const b = new GraphBuilder('prg_features');
  const x = b.input('x', imageInputShape(velocity, o.batch));
  const vel = o.batch === undefined ? velocity : specializeBatch(velocity, o.batch);
  const f = velocityFn(b, namespaced(vel, 'velocity/'), labelInput(b, velocity, o.batch));
  const states = unrollSolve(b, f, x, { solver: o.solver, steps: o.steps, t0: 0, t1: o.tStar });
  const feats = b.output(featuresOf(b, states[states.length - 1], o.pool), 'features');
  if (o.head) appendHead(b, o.head, feats);
  return b.build();
}

/**
 * The same graph with a fixed batch: inputs' first dim set to `batch` and every shape
 * re-inferred (decodeModel re-runs shape inference). Fixed shapes keep ORT's load time linear in
 * the size of unrolled graphs, and give the autodiff static shapes.
 */
export function specializeBatch(g: Graph, batch: number): Graph {
  const inputs = g.inputs.map((v) => ({ ...v, shape: [batch, ...v.shape.slice(1)] }));
  const outputs = g.outputs.map((v) => ({ ...v, shape: [batch, ...v.shape.slice(1)] }));
  // Weights stay out of the bytes (external data, handed back by name): no copy of them, and no
  // 2 GiB protobuf limit for large imported nets.
  const externalData = planExternalData(g, { location: 'in-memory', threshold: 1024 });
  return decodeModel(encodeModel({ ...g, inputs, outputs }, { externalData }), {
    tensors: g.initializers,
  });
}

/** [batch, C, H, W] from the velocity net's `x` input (batch defaults to the net's own dim). */
export function imageInputShape(velocity: Graph, batch?: number): (number | string)[] {
  const xin = velocity.inputs.find((i) => i.name === 'x');
  if (!xin || xin.shape.length !== 4)
    throw new Error(`velocity graph ${velocity.name} has no rank-4 input x`);
  return [batch ?? xin.shape[0], ...xin.shape.slice(1)];
}

/** Head on top of `features`: outputs `logits` and `probabilities`. */
export function appendHead(b: GraphBuilder, head: Graph, feats: Value): Value {
  const h = namespaced(head, 'head/', HEAD_PREFIX);
  const logits = b.output(b.call(h, { features: feats }).logits, 'logits');
  b.output(b.softmax(logits, -1), 'probabilities');
  return logits;
}

/**
 * Post-processing graph for numerically solved states (dopri5): input `xt` [N, C, H, W] →
 * `features` (and `logits`, `probabilities` with a head).
 */
export function buildPostGraph(
  inputShape: readonly (number | string)[],
  pool: number | null,
  head?: Graph,
): Graph {
  const b = new GraphBuilder('prg_post');
  const xt = b.input('xt', [...inputShape]);
  const feats = b.output(featuresOf(b, xt, pool), 'features');
  if (head) appendHead(b, head, feats);
  return b.build();
}

/**
 * Trajectory graph: input `x` [N, C, H, W] (and `y` for a class-conditional net); outputs `frame_0..frame_{F-1}` at t = i/(F−1),
 * each segment integrated with ceil(steps / (F−1)) steps.
 */
export function buildTrajectoryGraph(
  velocity: Graph,
  o: { solver: FixedSolverName; steps: number; frames: number },
): Graph {
  if (!Number.isInteger(o.frames) || o.frames < 2 || o.frames > 200)
    throw new Error(`frames=${o.frames}: use an integer in [2, 200]`);
  const b = new GraphBuilder('prg_trajectory');
  const x = b.input('x', imageInputShape(velocity, 1));
  const y = labelInput(b, velocity, 1);
  const f = velocityFn(b, namespaced(specializeBatch(velocity, 1), 'velocity/'), y);
  const segs = o.frames - 1;
  const per = Math.max(1, Math.ceil(o.steps / segs));
  let cur = x;
  b.output(b.identity(x), 'frame_0');
  for (let i = 0; i < segs; i++) {
    const states = unrollSolve(b, f, cur, {
      solver: o.solver,
      steps: per,
      t0: i / segs,
      t1: (i + 1) / segs,
    });
    cur = states[states.length - 1];
    b.output(cur, `frame_${i + 1}`);
  }
  return b.build();
}
