/**
 * Exact minibatch OT (src/prg/ot) at training size: cost matrix + assignment, one JSON object per
 * line (median and min over repeats after a warm-up).
 *
 *   npx vite-node bench/ot.ts            (or: npm run build && node dist/bench/ot.js)
 *
 * Target (task brief): B = 128 at 784 dims in under 50 ms total.
 */
import { Rng } from '../src/prg/rng';
import { solveAssignment, sqEuclideanCost } from '../src/prg/ot';

function stats(xs: number[]): { medianMs: number; minMs: number } {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return { medianMs: r(s[Math.floor(s.length / 2)]), minMs: r(s[0]) };
}

function main(): void {
  const repeats = 20;
  for (const [n, d] of [
    [64, 784],
    [128, 784],
    [256, 784],
    [128, 3072],
  ]) {
    const rng = new Rng(n * d);
    const costMs: number[] = [];
    const lapMs: number[] = [];
    const totalMs: number[] = [];
    for (let r = 0; r < repeats + 3; r++) {
      const x0 = rng.fillUniform(new Float32Array(n * d), -1, 1);
      const x1 = rng.fillNormal(new Float32Array(n * d));
      const t0 = performance.now();
      const c = sqEuclideanCost(x0, x1, n, n, d);
      const t1 = performance.now();
      solveAssignment(c, n);
      const t2 = performance.now();
      if (r < 3) continue; // warm-up: JIT
      costMs.push(t1 - t0);
      lapMs.push(t2 - t1);
      totalMs.push(t2 - t0);
    }
    console.log(
      JSON.stringify({
        bench: 'ot',
        n,
        d,
        repeats,
        cost: stats(costMs),
        assignment: stats(lapMs),
        total: stats(totalMs),
        node: process.version,
      }),
    );
  }
}

main();
