/** Test fixtures: small "user" velocity graphs for `prg import onnx`. */
import { join } from 'node:path';
import { GraphBuilder } from '../../../engine/onnx/builder';
import { Graph, attr, tensor } from '../../../engine/onnx/types';
import { flipTimeConvention } from '../convention';
import { importNet } from '../plan';
import { planSit } from '../sit';

export const IMPORT_FIXTURES = join(
  __dirname,
  '..',
  '..',
  '..',
  '..',
  'test',
  'fixtures',
  'import',
);

/**
 * A small user net whose LayerNormalization (opset 17, as torch exports nn.LayerNorm) has a shape
 * rule but no VJP rule: out = conv1x1(LayerNorm_W(sample)) · (1 + timestep).
 */
export function layerNormNet(): Graph {
  const b = new GraphBuilder('ln_net');
  const s = b.input('sample', ['N', 4, 8, 8]);
  const ts = b.input('timestep', ['N']);
  const scale = b.param('norm.weight', tensor('float32', [8], Array(8).fill(1.1)));
  const bias = b.param('norm.bias', tensor('float32', [8], Array(8).fill(0.1)));
  const w = b.param(
    'proj.weight',
    tensor(
      'float32',
      [4, 4, 1, 1],
      Array.from({ length: 16 }, (_, i) => ((i * 7) % 5) / 5 - 0.4),
    ),
  );
  const [ln] = b.op('LayerNormalization', [s, scale, bias], {
    axis: attr.i(-1),
    epsilon: attr.f(1e-5),
  });
  const tt = b.reshape(b.add(ts, 1), [-1, 1, 1, 1]);
  b.output(b.mul(b.conv(ln, w), tt), 'out');
  return b.build();
}

/** A user's graph: inputs sample, timestep (× 1000) [, class_labels]; output out. */
export function userGraph(upstream: Graph, tScale: number): Graph {
  const b = new GraphBuilder('user_net');
  const x = upstream.inputs.find((i) => i.name === 'x')!;
  const sample = b.input('sample', x.shape);
  const timestep = b.input('timestep', ['N']);
  const feeds: Record<string, ReturnType<GraphBuilder['input']>> = {
    x: sample,
    t: tScale === 1 ? timestep : b.div(timestep, tScale),
  };
  if (upstream.inputs.some((i) => i.name === 'y'))
    feeds.y = b.input('class_labels', ['N'], 'int64');
  b.output(b.call(upstream, feeds, { prefix: 'net' }).v, 'out');
  return b.build();
}

export async function sitUpstream(classConditional: boolean): Promise<Graph> {
  const imp = await importNet(join(IMPORT_FIXTURES, 'sit-tiny.torch1.pt'), ['ema'], (sd, r) =>
    planSit(sd, r, 'sit-tiny.torch1.pt', { path: 'linear', heads: 4, classConditional }),
  );
  // Back to SiT's own convention (data at t = 1): −v(x, 1 − t) undoes the import's flip.
  return flipTimeConvention(imp.velocity);
}
