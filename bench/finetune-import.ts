/**
 * Fine-tuning imported models (npm run bench:finetune-import): the committed fixtures of
 * test/fixtures/import — the tiny SiT (4×8×8, patch 2, hidden 32, depth 2) and the torchcfm
 * CIFAR-10 U-Net at width 32 (3×32×32, 2.2 M parameters) — imported as model directories, then
 * one eq. 3 step (paper §3.2) in the default adjoint mode, head-only (frozen flow) and full, Euler,
 * K = BENCH_K (3, the import default) to t* = 0.5, flow term λ = 1 when the flow trains.
 *
 * One JSON line per case: case, fixture, train (head | all), batch, steps_k, step_ms (median of
 * BENCH_REPS timed steps after one warm-up step), setup_s (import + graph build + ORT sessions +
 * warm-up step), peak_rss_mb (the case's own child process: process.resourceUsage().maxRSS),
 * threads, loadavg (1 min, at the end of the case).
 *
 * Environment: BENCH_BATCH (8), BENCH_K (3), BENCH_REPS (3), BENCH_CASES (comma list),
 * PRG_THREADS (2).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW } from '../src/engine/runtime/optim';
import { ParamStore } from '../src/engine/runtime/params';
import { ImportedNet, importNet } from '../src/prg/import/plan';
import { writeImportedModel } from '../src/prg/import/model';
import { planSit } from '../src/prg/import/sit';
import { TORCHCFM_CIFAR10, planTorchcfmUNet } from '../src/prg/import/torchcfm-unet';
import { readModelDir } from '../src/prg/model-dir/io';
import { Rng } from '../src/prg/rng';
import { smoothTargets } from '../src/prg/training/common';
import { FineTuneStep } from '../src/prg/training/finetune';
import { fineTuneNets } from '../src/prg/training/finetune-nets';

const B = Number(process.env.BENCH_BATCH ?? 8);
const K = Number(process.env.BENCH_K ?? 3);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const THREADS = Number(process.env.PRG_THREADS ?? 2);

/** test/fixtures/import from bench/ (vite-node) or dist/bench/ (npm run). */
function fixtures(): string {
  for (const up of [['..'], ['..', '..']]) {
    const p = join(__dirname, ...up, 'test', 'fixtures', 'import');
    if (existsSync(p)) return p;
  }
  throw new Error('test/fixtures/import not found');
}

const FIXTURES: Record<string, () => Promise<ImportedNet<unknown>>> = {
  'sit-tiny': () =>
    importNet(join(fixtures(), 'sit-tiny.torch1.pt'), ['ema'], (sd, r) =>
      planSit(sd, r, 'sit-tiny.torch1.pt', { path: 'linear', heads: 4 }),
    ) as Promise<ImportedNet<unknown>>,
  'torchcfm-unet-w32': () =>
    importNet(join(fixtures(), 'torchcfm-unet-w32.torch2.pt'), ['ema_model'], (sd) =>
      planTorchcfmUNet(sd, { ...TORCHCFM_CIFAR10, numChannels: 32, numHeadChannels: 16 }),
    ) as Promise<ImportedNet<unknown>>,
};

const CASES: Record<string, { fixture: string; train: 'head' | 'all' }> = {
  'sit-tiny-head': { fixture: 'sit-tiny', train: 'head' },
  'sit-tiny-all': { fixture: 'sit-tiny', train: 'all' },
  'torchcfm-unet-w32-head': { fixture: 'torchcfm-unet-w32', train: 'head' },
  'torchcfm-unet-w32-all': { fixture: 'torchcfm-unet-w32', train: 'all' },
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function runCase(name: string): Promise<Record<string, unknown>> {
  const c = CASES[name];
  const t0 = Date.now();
  const root = await fs.mkdtemp(join(tmpdir(), 'prg-bench-ft-import-'));
  try {
    const imp = await FIXTURES[c.fixture]();
    const shape = imp.velocity.inputs[0].shape.slice(1) as number[];
    const dir = (
      await writeImportedModel(imp, {
        out: join(root, 'model'),
        name: c.fixture,
        classes: ['a', 'b'],
        head: { kind: 'pooled', hidden: 768, featurePool: Math.min(16, shape[1]) },
        solver: { name: 'euler', steps: K, tStar: 0.5 },
      })
    ).dir;
    const base = await readModelDir(dir);
    const frozen = c.train === 'head';
    const nets = fineTuneNets(base, {
      classes: ['a', 'b'],
      pool: base.manifest.featurePool,
      batchSize: B,
      seed: 0,
    });
    const fts = await FineTuneStep.create(
      nets.prepared.velocity,
      nets.prepared.head,
      {
        batch: B,
        classes: 2,
        solver: 'euler',
        steps: K,
        tStar: 0.5,
        pool: base.manifest.featurePool,
        lambdaFlow: frozen ? 0 : 1,
        freezeFlow: frozen,
        mode: 'adjoint',
      },
      { threads: THREADS },
    );
    const rng = new Rng(1);
    const d = B * shape.reduce((a, b) => a * b, 1);
    const batch = {
      x: rng.fillUniform(new Float32Array(d), -1, 1),
      target: smoothTargets(
        Int32Array.from({ length: B }, (_, i) => i % 2),
        2,
        0.1,
      ),
      fm: {
        xt: rng.fillNormal(new Float32Array(d)),
        t: rng.fillUniform(new Float32Array(B)),
        ut: rng.fillNormal(new Float32Array(d)),
      },
    };
    const trainable = new ParamStore();
    for (const n of fts.trainable)
      trainable.set(n, nets.params.get(n).dims, nets.params.get(n).data);
    const opt = new AdamW({ weightDecay: 0.05 });
    let loss = NaN;
    const step = async () => {
      const r = await fts.run(nets.params, batch, shape);
      loss = r.loss;
      opt.step(trainable, r.grads, 1e-4);
    };
    await step();
    const setupS = (Date.now() - t0) / 1000;
    const times: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const s = process.hrtime.bigint();
      await step();
      times.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    await fts.release();
    return {
      case: name,
      fixture: c.fixture,
      train: c.train,
      params: base.manifest.architecture.velocity.params,
      batch: B,
      steps_k: K,
      step_ms: Math.round(median(times)),
      setup_s: Math.round(setupS * 10) / 10,
      loss_finite: Number.isFinite(loss),
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      threads: THREADS,
      loadavg: Math.round(loadavg()[0] * 100) / 100,
    };
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--case');
  if (i >= 0) {
    process.stdout.write(JSON.stringify(await runCase(process.argv[i + 1])) + '\n');
    return;
  }
  const names = process.env.BENCH_CASES?.split(',') ?? Object.keys(CASES);
  for (const name of names) {
    if (!CASES[name]) throw new Error(`unknown case ${name}; cases: ${Object.keys(CASES)}`);
    // Each case in its own process, so peak_rss_mb is that case's own.
    const r = spawnSync(process.execPath, [__filename, '--case', name], {
      encoding: 'utf8',
      env: process.env,
    });
    if (r.status !== 0) {
      process.stdout.write(JSON.stringify({ case: name, error: r.stderr.trim() }) + '\n');
      continue;
    }
    process.stdout.write(r.stdout);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
