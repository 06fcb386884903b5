import { GraphBuilder } from '../../engine/onnx/builder';
import { pruneGraph } from '../../engine/onnx/graph-utils';
import { Graph } from '../../engine/onnx/types';

/** The head graph with its first tanh activation (the hidden layer, paper §3.1) as output. */
export function headHiddenGraph(head: Graph): Graph {
  const tanh = head.nodes.find((n) => n.op === 'Tanh');
  if (!tanh) throw new Error(`head ${head.name}: no Tanh node, so no hidden layer to score`);
  const b = GraphBuilder.from(head);
  b.output(b.value(tanh.outputs[0]), 'hidden');
  return pruneGraph(b.build(), ['hidden']);
}
