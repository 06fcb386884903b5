/** Test fixtures: small "user" velocity graphs for `prg import onnx`. */
import { GraphBuilder } from '../../../engine/onnx/builder';
import { Graph, attr, tensor } from '../../../engine/onnx/types';

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
