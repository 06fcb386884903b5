/**
 * Reverse-mode autodiff on ONNX graphs: `vjp` appends a gradient graph of standard ONNX ops to a
 * forward graph (micrograd's backward(), with ONNX nodes in place of Python closures).
 *
 * 1. Prune: keep only nodes on a path from `wrt` to `of` (float values only; shapes, indices and
 *    masks carry no gradient), and check every such node has a rule before building anything.
 * 2. Walk those nodes in reverse topological order (ONNX node order is topological), add up each
 *    output's cotangents with Add, and let the op's rule (rules.ts) emit the input cotangents.
 *    Rules read the forward values, so the forward pass runs once and is never recomputed.
 * 3. Output `grad_<name>` for every `wrt` name (zeros when it does not influence `of`).
 */
import { GraphBuilder, Value } from '../onnx/builder';
import { Graph, Node, isStatic, numel, tensor } from '../onnx/types';
import { expandTo, sameShape, zeros } from './helpers';
import { ABSORBED, checkGradShape, vjpRules } from './rules';

export interface VjpOptions {
  /** Values to differentiate (usually graph outputs, e.g. the loss). */
  of: string[];
  /** Graph inputs or initializers to differentiate with respect to. */
  wrt: string[];
  /**
   * 'input' (default): a cotangent input `grad_<output>` per output in `of`.
   * 'ones': scalar outputs (one element, static shape) are seeded with a constant 1 and take no
   * cotangent input; other outputs still get a cotangent input.
   */
  seed?: 'ones' | 'input';
}

export interface VjpResult {
  graph: Graph;
  /** output name -> cotangent input name (outputs seeded with a constant 1 are absent). */
  seeds: Record<string, string>;
  /** wrt name -> gradient output name. */
  grads: Record<string, string>;
}

/**
 * Rules that accept a cotangent which only broadcasts to the output (elementwise ops, whose
 * results go through unbroadcast anyway): they save the Expand of a reduction's cotangent.
 */
const BROADCAST_OK = new Set(['Add', 'Sub', 'Mul', 'Div', 'Neg']);

/** The nodes a VJP of `of` with respect to `wrt` differentiates: those on a float path between. */
export function gradientPath(graph: Graph, of: readonly string[], wrt: readonly string[]): Node[] {
  return pathOf(graph, of, wrt).path;
}

function pathOf(graph: Graph, of: readonly string[], wrt: readonly string[]) {
  const isFloat = (n: string) => graph.values.get(n)?.dtype === 'float32';
  const fromWrt = new Set(wrt);
  for (const node of graph.nodes)
    if (node.inputs.some((i) => fromWrt.has(i)))
      for (const o of node.outputs) if (o && isFloat(o)) fromWrt.add(o);
  const toOf = new Set(of);
  for (let k = graph.nodes.length - 1; k >= 0; k--) {
    const node = graph.nodes[k];
    if (node.outputs.some((o) => toOf.has(o)))
      for (const i of node.inputs) if (i && isFloat(i)) toOf.add(i);
  }
  const path = graph.nodes.filter(
    (n) => n.inputs.some((i) => fromWrt.has(i)) && n.outputs.some((o) => toOf.has(o)),
  );
  return { path, fromWrt };
}

/** Op types on the gradient path of `of` w.r.t. `wrt` that have no VJP rule (sorted, unique). */
export function opsWithoutRule(
  graph: Graph,
  of: readonly string[],
  wrt: readonly string[],
): string[] {
  const ops = gradientPath(graph, of, wrt)
    .map((n) => n.op)
    .filter((op) => !vjpRules[op]);
  return [...new Set(ops)].sort();
}

export function vjp(graph: Graph, opts: VjpOptions): VjpResult {
  const { of, wrt } = opts;
  const info = (n: string, role: string) => {
    const v = graph.values.get(n);
    if (!v) throw new Error(`vjp: ${role} ${n} is not a value of graph ${graph.name}`);
    if (v.dtype !== 'float32') throw new Error(`vjp: ${role} ${n} is ${v.dtype}, not float32`);
    return v;
  };
  if (of.length === 0) throw new Error('vjp: `of` is empty');
  of.forEach((n) => info(n, 'output'));
  wrt.forEach((n) => info(n, 'wrt'));
  const isInputOrParam = (n: string) =>
    graph.initializers.has(n) || graph.inputs.some((i) => i.name === n);
  for (const n of wrt)
    if (!isInputOrParam(n))
      throw new Error(`vjp: wrt ${n} is neither a graph input nor an initializer`);
  const both = of.filter((n) => wrt.includes(n));
  if (both.length) throw new Error(`vjp: ${both.join(', ')} in both \`of\` and \`wrt\``);
  for (const n of [...new Set([...of, ...wrt])]) {
    if (graph.values.has(`grad_${n}`))
      throw new Error(`vjp: graph ${graph.name} already has a value named grad_${n}`);
  }

  // 1. Nodes on a path from wrt to of.
  const { path, fromWrt } = pathOf(graph, of, wrt);
  const missing = path.filter((n) => !vjpRules[n.op]);
  if (missing.length)
    throw new Error(
      `vjp: no gradient rule for ${missing.map((n) => `op ${n.op} (node ${n.name})`).join(', ')}`,
    );

  // 2. Seeds, then the reverse walk.
  const b = GraphBuilder.from(graph);
  const cots = new Map<string, Value[]>();
  const addCot = (name: string, v: Value) => {
    const list = cots.get(name);
    if (list) list.push(v);
    else cots.set(name, [v]);
  };
  /** The summed cotangent of a value; `broadcastOk`: may stay unexpanded (same rank, 1s). */
  const total = (name: string, broadcastOk = false): Value | undefined => {
    const list = cots.get(name);
    if (!list) return undefined;
    // Full-shape terms first, so broadcast (unexpanded) terms are absorbed by the Adds.
    const full = (v: Value) => sameShape(v.shape, b.value(name).shape);
    const sorted = [...list.filter(full), ...list.filter((v) => !full(v))];
    let s = sorted[0];
    for (const v of sorted.slice(1)) s = b.add(s, v);
    cots.set(name, [s]);
    if (!full(s) && !broadcastOk) {
      s = expandTo(b, s, b.value(name).shape, b.value(name));
      cots.set(name, [s]);
    }
    return s;
  };
  const seeds: Record<string, string> = {};
  for (const o of new Set(of)) {
    const v = b.value(o);
    if (opts.seed === 'ones' && isStatic(v.shape) && numel(v.shape) === 1) {
      addCot(o, b.const(tensor('float32', v.shape, [1]), `seed_${o}`));
    } else {
      addCot(o, b.input(`grad_${o}`, v.shape));
      seeds[o] = `grad_${o}`;
    }
  }

  // Rules that recognise fused patterns (SiLU) look up forward producers: one map, not a scan of
  // the growing node list per node.
  const producers = new Map<string, Node>();
  for (const node of graph.nodes) for (const o of node.outputs) if (o) producers.set(o, node);
  const producer = (value: string) => producers.get(value);

  for (let k = path.length - 1; k >= 0; k--) {
    const node = path[k];
    const broadcastOk = BROADCAST_OK.has(node.op);
    const g = node.outputs.map((o) => (o ? total(o, broadcastOk) : undefined));
    // No cotangent reached any output (all consumers absorbed it, e.g. SiLU's Sigmoid): the node
    // contributes nothing.
    if (g.every((v) => v === undefined)) continue;
    const x = node.inputs.map((i) => (i ? b.value(i) : undefined));
    const y = node.outputs.map((o) => b.value(o));
    const grads = vjpRules[node.op]({ b, node, x, y, g, producer });
    // One entry per input; rules may list trailing optional inputs the node omits, as null.
    const n = node.inputs.length;
    if (grads.length < n || grads.slice(n).some(Boolean))
      throw new Error(
        `vjp: rule for ${node.op} (${node.name}) gave ${grads.length} gradients for ${node.inputs.length} inputs`,
      );
    // A value read at several positions (Mul(x, x)) may get its whole gradient at one of them.
    const served = new Set<string>();
    node.inputs.forEach((name, i) => {
      const make = grads[i];
      if (!name || !fromWrt.has(name) || !make) return;
      if (make === ABSORBED) {
        served.add(name);
        return;
      }
      const v = make();
      checkGradShape(node, i, graph.values.get(name)!.shape, v);
      addCot(name, v);
      served.add(name);
    });
    node.inputs.forEach((name, i) => {
      if (name && fromWrt.has(name) && !served.has(name))
        throw new Error(
          `vjp: ${node.op} (${node.name}) has no gradient for input ${i} (${name}), which depends on wrt`,
        );
    });
  }

  // 3. One output per wrt name.
  const grads: Record<string, string> = {};
  for (const w of new Set(wrt)) {
    const x = b.value(w);
    const v = total(w) ?? zeros(b, x.shape, x);
    grads[w] = b.output(v, `grad_${w}`).name;
  }
  return { graph: b.build(), seeds, grads };
}
