/**
 * Time convention. SiT and torchcfm put data at t = 1 and noise at t = 0; this project puts data
 * at t = 0 (paper §3.1: the reverse process runs from the image at t = 0 toward noise). With
 * x_t = ψ(x, ε, t) upstream and s = 1 − t, d/dt x = −d/ds x, so the velocity in our convention is
 *
 *   v(x, t) = −v_upstream(x, 1 − t),
 *
 * which is folded into the graph exactly: one Sub before the net and one Neg after it.
 */
import { GraphBuilder } from '../../engine/onnx/builder';
import { Graph } from '../../engine/onnx/types';

export const UPSTREAM_CONVENTION = 'data at t = 1, noise at t = 0, raw t in [0, 1]';
export const CONVENTION_TRANSFORM = 'v(x, t) = -v_upstream(x, 1 - t)';

/** Wrap a velocity graph (inputs x, t [, y]; output v) in the flip; parameters keep their names. */
export function flipTimeConvention(net: Graph): Graph {
  const b = new GraphBuilder(net.name);
  const feeds: Record<string, ReturnType<GraphBuilder['input']>> = {};
  for (const inp of net.inputs) feeds[inp.name] = b.input(inp.name, inp.shape, inp.dtype);
  const t = feeds.t;
  if (!t || !feeds.x) throw new Error(`flipTimeConvention: ${net.name} needs inputs x and t`);
  const out = b.call(net, { ...feeds, t: b.sub(1, t) }, { prefix: 'upstream' });
  if (!out.v) throw new Error(`flipTimeConvention: ${net.name} has no output v`);
  b.output(b.neg(out.v), 'v');
  b.metadata = { ...(net.metadata ?? {}), 'prg.convention': CONVENTION_TRANSFORM };
  return b.build();
}
