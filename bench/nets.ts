/**
 * Parameter counts of the velocity-net presets and heads, one JSON object per line.
 *
 *   npx vite-node bench/nets.ts            (or: npm run build && node dist/bench/nets.js)
 *   npx vite-node bench/nets.ts -- --time  also times one forward pass of each XS/S net at batch 8
 *
 * The table in docs/nets.md is this script's output.
 */
import { buildVelocityNet, DIT_PRESETS, UNET_PRESETS, VelocityNetKind } from '../src/prg/nets';
import { buildHead } from '../src/prg/heads';
import { GraphSession } from '../src/engine/runtime/session';
import { tensor } from '../src/engine/onnx/types';

const SHAPES: [number, number, number][] = [
  [1, 28, 28],
  [3, 32, 32],
];

async function main(): Promise<void> {
  const time = process.argv.includes('--time');
  const kinds: [VelocityNetKind, string[]][] = [
    ['unet', Object.keys(UNET_PRESETS)],
    ['dit', Object.keys(DIT_PRESETS)],
  ];
  for (const inputShape of SHAPES)
    for (const [kind, presets] of kinds)
      for (const preset of presets) {
        const t0 = performance.now();
        const net = buildVelocityNet({ kind, preset, inputShape, seed: 0 });
        const buildMs = performance.now() - t0;
        const row: Record<string, unknown> = {
          bench: 'nets',
          kind,
          preset,
          inputShape,
          params: net.params,
          nodes: net.graph.nodes.length,
          buildMs: Math.round(buildMs),
        };
        if (time && preset !== 'B') {
          const n = 8;
          const [c, h, w] = inputShape;
          const s = await GraphSession.create(net.graph, { threads: 1 });
          const feeds = {
            x: tensor('float32', [n, c, h, w], new Float32Array(n * c * h * w).fill(0.1)),
            t: tensor('float32', [n], new Float32Array(n).fill(0.5)),
          };
          await s.run(feeds);
          const t1 = performance.now();
          await s.run(feeds);
          row.forwardMsBatch8 = Math.round(performance.now() - t1);
          await s.release();
        }
        console.log(JSON.stringify(row));
      }
  for (const [kind, inputDim, hidden] of [
    ['mlp', 784, 256],
    ['pooled', 768, 768],
  ] as const) {
    const head = buildHead({ kind, inputDim, hidden, classes: 10, seed: 0 });
    console.log(
      JSON.stringify({
        bench: 'nets',
        head: kind,
        inputDim,
        hidden,
        classes: 10,
        params: head.params,
      }),
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
