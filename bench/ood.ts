/**
 * Likelihood cost: images/s for bits/dim (src/prg/ood/likelihood.ts) on PRG-UNet-XS at 28×28
 * (the Fashion-MNIST shape), at the default solver, steps and probe count, plus any settings given
 * as arguments: `node dist/bench/ood.js [solver:steps:probes ...]`, e.g. `euler:20:1`.
 * Prints one JSON object per line.
 */
import { cpus } from 'node:os';
import {
  LIKELIHOOD_DEFAULTS,
  LikelihoodEstimator,
  LikelihoodSolver,
} from '../src/prg/ood/likelihood';
import { buildVelocityNet } from '../src/prg/nets';

async function main(): Promise<void> {
  const net = buildVelocityNet({ kind: 'unet', preset: 'XS', inputShape: [1, 28, 28], seed: 0 });
  const d = LIKELIHOOD_DEFAULTS;
  const settings = [`${d.solver}:${d.steps}:${d.probes}`, ...process.argv.slice(2)];
  const n = Number(process.env.BENCH_IMAGES ?? 64);
  const images = new Float32Array(n * 784).map((_, i) => Math.sin(i * 0.1));
  for (const s of settings) {
    const [solver, steps, probes] = s.split(':');
    const est = await LikelihoodEstimator.create(net.graph, {
      solver: solver as LikelihoodSolver,
      steps: Number(steps),
      probes: Number(probes),
      batchSize: Math.max(1, Math.floor(32 / Number(probes))),
    });
    await est.evaluate(images.subarray(0, 784 * 2), 2); // warm-up: session init, first run
    const t0 = process.hrtime.bigint();
    const r = await est.evaluate(images, n);
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    await est.release();
    console.log(
      JSON.stringify({
        case: 'ood-bits-per-dim',
        net: 'PRG-UNet-XS',
        image: '1x28x28',
        solver,
        steps: Number(steps),
        probes: Number(probes),
        probe: d.probe,
        default: s === settings[0],
        images: n,
        img_per_s: n / sec,
        mean_bpd_untrained: r.bitsPerDim.reduce((a, b) => a + b, 0) / n,
        cores: cpus().length,
        threads: process.env.PRG_THREADS ?? 'ort-default',
      }),
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
