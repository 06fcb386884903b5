/** `npm start` until the server lands: build a tiny graph, run it in ONNX Runtime, print the result. */
import { GraphBuilder } from './onnx/builder';
import { tensor } from './onnx/types';
import { runGraph } from './runtime/session';

async function main(): Promise<void> {
  const b = new GraphBuilder('selfcheck');
  const x = b.input('x', [1, 3]);
  b.output(b.tanh(b.mul(x, 2)), 'y');
  const out = await runGraph(b.build(), { x: tensor('float32', [1, 3], [0, 0.5, 1]) });
  console.log(JSON.stringify({ engine: 'ok', y: Array.from(out.y.data as Float32Array) }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
