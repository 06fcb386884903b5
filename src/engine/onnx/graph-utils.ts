/** Whole-graph transformations used around training: lift parameters to inputs, prune. */
import { Graph } from './types';

/**
 * Turn the named initializers into graph inputs (same dtype and dims), so a training session
 * takes the parameters as feeds and one session serves every step.
 */
export function promoteInitializers(g: Graph, names: string[]): Graph {
  const initializers = new Map(g.initializers);
  const inputs = g.inputs.map((v) => ({ ...v }));
  for (const n of names) {
    const t = initializers.get(n);
    if (!t) throw new Error(`promoteInitializers: ${n} is not an initializer of graph ${g.name}`);
    initializers.delete(n);
    inputs.push({ name: n, dtype: t.dtype, shape: [...t.dims] });
  }
  return { ...g, inputs, initializers, nodes: [...g.nodes], values: new Map(g.values) };
}

/**
 * Keep only what the given outputs need: nodes, initializers and inputs not on a path to them
 * are dropped (so a session on the result asks for fewer feeds).
 */
export function pruneGraph(g: Graph, outputs: string[]): Graph {
  const outInfo = outputs.map((n) => {
    const v = g.values.get(n);
    if (!v) throw new Error(`pruneGraph: ${n} is not a value of graph ${g.name}`);
    return { ...v };
  });
  const live = new Set(outputs);
  const keep = new Array<boolean>(g.nodes.length).fill(false);
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const node = g.nodes[k];
    if (!node.outputs.some((o) => live.has(o))) continue;
    keep[k] = true;
    for (const i of node.inputs) if (i) live.add(i);
  }
  const nodes = g.nodes.filter((_, k) => keep[k]);
  for (const n of nodes) for (const o of n.outputs) if (o) live.add(o);
  const values = new Map([...g.values].filter(([k]) => live.has(k)));
  return {
    ...g,
    inputs: g.inputs.filter((v) => live.has(v.name)).map((v) => ({ ...v })),
    outputs: outInfo,
    initializers: new Map([...g.initializers].filter(([k]) => live.has(k))),
    nodes,
    values,
  };
}
