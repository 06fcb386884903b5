/**
 * Time to accuracy against PyTorch (npm run bench:tta; issue 16, item 4): the same fine-tuning
 * recipe (paper §3.2, eq. 3) run by this engine and by a PyTorch reimplementation
 * (bench/torch_tta.py, the net of bench/torch_unet_xs.py) on the same machine, from the same
 * pretrained flow, on the same batches, each evaluated on the same validation images every N steps.
 *
 * Shared by both sides:
 * - start: the committed ablation pretrain runs/recipes/ablation-units/pretrain-icfm-s0-STAR/model
 *   (TTA_BASE overrides): its velocity net and its (fresh) MLP head; PyTorch loads the same
 *   initializers by parameter name, and the forward of both (x_{t*} and logits of 16 validation
 *   images) is compared before training: forward_max_abs_diff (x_{t*} and logits) in the summary.
 * - data: the first 6000 of mnist:train with 1000 validation images carved out (seed 0), as the
 *   ablation recipes do; the test split is never read. The batch order (shuffled per epoch,
 *   drop-last) is computed here and handed to PyTorch, so both sides see the same batches; only the
 *   flow-matching noise and times come from each side's own generator.
 * - recipe: batch 64, K = 3 Euler steps to t* = 0.5, flattened x_{t*} → MLP head, label smoothing
 *   0.1, λ·FM with λ = 1 (ICFM path), AdamW (β 0.9/0.999, ε 1e-8, weight decay 0.05) at a
 *   constant learning rate 1e-3 (no warm-up or cosine, so a crossing does not depend on the run
 *   length), gradients through the unrolled solver (this engine: `direct` mode).
 * - clocks: training time only (batch assembly, forward, backward, optimizer step), wall-clock and
 *   process CPU seconds (every thread); evaluations and setup are excluded and reported apart.
 *
 * Output: one JSON line per side (curve, median step time), one per accuracy threshold (step, wall
 * and CPU seconds to reach it on each side, PRG/torch ratios: below 1 = this engine faster), and a
 * summary line (load averages, threads, torch version, forward agreement).
 *
 * Environment: BENCH_SHORT=1 (at most 40 steps, evaluation every 5 steps on the first 500 of the
 * validation images, thresholds 0.8, 0.85 and 0.9), TTA_STEPS (300), TTA_EVAL_EVERY (10),
 * TTA_EVAL_IMAGES (1000), TTA_THRESHOLDS (0.8,0.9,0.95), TTA_LR (1e-3), TTA_BASE, TTA_SIDES
 * (prg,torch), TTA_KEEP_GOING=1 (do not stop a side once it reached the last threshold),
 * PRG_THREADS (1; torch gets the same), PRG_PYTHON (an interpreter with torch and numpy),
 * TTA_OUT (also write the lines, with commit, command and machine, to this JSON file: the report's
 * input, runs/tta/<name>/tta.json).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { AdamW } from '../src/engine/runtime/optim';
import { ParamStore } from '../src/engine/runtime/params';
import { BatchLoader, ImageDataset, loadDataset, subset } from '../src/prg/data';
import { PrgModel } from '../src/prg/inference';
import { flowMatchingBatch, makeInterpolant } from '../src/prg/interpolants';
import { readModelDir } from '../src/prg/model-dir/io';
import { gitCommit } from '../src/prg/model-dir/provenance';
import { carveValidation, machine } from '../src/prg/recipes/run';
import { writeJson } from '../src/prg/recipes/run-state';
import { Rng } from '../src/prg/rng';
import { smoothTargets } from '../src/prg/training/common';
import { evaluateModel, labelMap } from '../src/prg/training/evaluate';
import { FineTuneStep } from '../src/prg/training/finetune';
import { fineTunedModel } from '../src/prg/training/finetune-export';
import { fineTuneNets } from '../src/prg/training/finetune-nets';
import { resolveHyperparameters } from '../src/prg/training/hyperparameters';
import { TTA_KIND } from '../src/report/inputs';
import { CurvePoint, crossings, median, parseThresholds, ratio } from './tta-metrics';

const env = process.env;

/** What was printed (one JSON line each), kept for TTA_OUT. */
const emitted: Record<string, unknown>[] = [];
function emit(line: Record<string, unknown>): void {
  emitted.push(line);
  console.log(JSON.stringify(line));
}
const SHORT = env.BENCH_SHORT === '1';

function num(name: string, dflt: number): number {
  const v = env[name] === undefined || env[name] === '' ? dflt : Number(env[name]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name}=${env[name]} must be a number > 0`);
  return v;
}

const RECIPE = {
  train: 'mnist:train',
  limit: 6000,
  validation: 1000,
  carveSeed: 0,
  batch: 64,
  k: 3,
  tStar: 0.5,
  solver: 'euler' as const,
  lambdaFlow: 1,
  labelSmoothing: 0.1,
  weightDecay: 0.05,
  lr: num('TTA_LR', 1e-3),
  seed: 0,
  steps: num('TTA_STEPS', SHORT ? 40 : 300),
  evalEvery: num('TTA_EVAL_EVERY', SHORT ? 5 : 10),
  evalImages: num('TTA_EVAL_IMAGES', SHORT ? 500 : 1000),
  thresholds: parseThresholds(env.TTA_THRESHOLDS ?? (SHORT ? '0.8,0.85,0.9' : '0.8,0.9,0.95')),
};
const THREADS = num('PRG_THREADS', 1);
const KEEP_GOING = env.TTA_KEEP_GOING === '1';
const SIDES = (env.TTA_SIDES ?? 'prg,torch').split(',').map((s) => s.trim());
const PROBE = 16;

/** The committed ablation pretrain (seed 0, ICFM), unless TTA_BASE names a model directory. */
function baseDir(): string {
  if (env.TTA_BASE) return resolve(env.TTA_BASE);
  const units = resolve('runs/recipes/ablation-units');
  const hit = existsSync(units)
    ? readdirSync(units).find((d) => d.startsWith('pretrain-icfm-s0-'))
    : undefined;
  if (!hit)
    throw new Error(
      `no ${units}/pretrain-icfm-s0-*/ (run from the repository root or set TTA_BASE)`,
    );
  return join(units, hit, 'model');
}

const loads = () => os.loadavg().map((l) => Number(l.toFixed(2)));
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const log = (m: string) => process.stderr.write(`# ${m}\n`);

interface SideResult {
  side: 'prg' | 'torch';
  curve: CurvePoint[];
  stepWallMs: number[];
  stepCpuMs: number[];
  setupS: number;
  evalS: number;
  loadBefore: number[];
  loadAfter: number[];
  extra?: Record<string, unknown>;
}

/** Float32 tensors as one little-endian blob plus an index, for bench/torch_tta.py (numpy). */
async function writeParams(dir: string, params: ParamStore): Promise<void> {
  const index: { name: string; dims: number[]; offset: number }[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const p of params) {
    index.push({ name: p.name, dims: [...p.dims], offset });
    chunks.push(Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength));
    offset += p.data.length;
  }
  await fs.writeFile(join(dir, 'params.bin'), Buffer.concat(chunks));
  await fs.writeFile(join(dir, 'params.json'), JSON.stringify(index));
}

const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

async function main(): Promise<void> {
  const base = await readModelDir(baseDir());
  const bm = base.manifest;
  const hp = resolveHyperparameters(
    {
      batchSize: RECIPE.batch,
      epochs: 1,
      learningRate: RECIPE.lr,
      weightDecay: RECIPE.weightDecay,
      warmupEpochs: 0,
      labelSmoothing: RECIPE.labelSmoothing,
      lambdaFlow: RECIPE.lambdaFlow,
      steps: RECIPE.k,
      tStar: RECIPE.tStar,
      solver: RECIPE.solver,
      gradientMode: 'direct',
      seed: RECIPE.seed,
    },
    bm,
  );
  const all = await loadDataset(RECIPE.train, { limit: RECIPE.limit });
  const { train, validation } = carveValidation(all, RECIPE.validation, RECIPE.carveSeed);
  const evalSet: ImageDataset =
    RECIPE.evalImages < validation.n
      ? subset(
          validation,
          Array.from({ length: RECIPE.evalImages }, (_, i) => i),
          validation.source,
        )
      : validation;
  const nets = fineTuneNets(base, {
    classes: train.classes,
    pool: bm.featurePool,
    batchSize: RECIPE.batch,
    seed: RECIPE.seed,
  });
  const labels = labelMap(train, nets.classes);
  const evalLabels = labelMap(evalSet, nets.classes);
  const loader = new BatchLoader(train, {
    batchSize: RECIPE.batch,
    shuffle: true,
    dropLast: true,
    seed: RECIPE.seed,
  });
  const order = new Int32Array(RECIPE.steps * RECIPE.batch);
  for (let s = 0, e = 0; s < RECIPE.steps; e++)
    for (const b of loader.epoch(e)) {
      if (s >= RECIPE.steps) break;
      order.set(b.indices, s++ * RECIPE.batch);
    }

  // The exchange directory: the starting weights, the data, the batch order and the probe.
  const dir = await fs.mkdtemp(join(os.tmpdir(), 'prg-tta-'));
  await writeParams(dir, nets.params);
  await fs.writeFile(join(dir, 'train_x.u8'), bytes(train.images));
  await fs.writeFile(
    join(dir, 'train_y.i32'),
    bytes(Int32Array.from(train.labels, (l) => labels[l])),
  );
  await fs.writeFile(join(dir, 'val_x.u8'), bytes(evalSet.images));
  await fs.writeFile(
    join(dir, 'val_y.i32'),
    bytes(Int32Array.from(evalSet.labels, (l) => evalLabels[l])),
  );
  await fs.writeFile(join(dir, 'order.i32'), bytes(order));
  const current = () =>
    fineTunedModel(bm, nets, hp, bm.featurePool, {
      outputDir: dir,
      name: 'tta',
      version: 'bench',
      dataset: RECIPE.train,
      command: 'npm run bench:tta',
    });
  const evaluate = async () => {
    const model = new PrgModel(current(), { threads: THREADS }, []);
    try {
      return (await evaluateModel(model, evalSet, { batchSize: 100 })).accuracy;
    } finally {
      await model.release();
    }
  };
  {
    // This engine's forward on the first PROBE validation images at the starting weights.
    const model = new PrgModel(current(), { threads: THREADS }, []);
    const d = evalSet.images.length / evalSet.n;
    const x = Float32Array.from(evalSet.images.subarray(0, PROBE * d), (p) => p / 127.5 - 1);
    const feats = await model.features({ data: x, n: PROBE });
    const cls = await model.classify({ data: x, n: PROBE });
    await model.release();
    await fs.writeFile(join(dir, 'probe_features.f32'), bytes(feats.data));
    await fs.writeFile(join(dir, 'probe_logits.f32'), bytes(cls.logits));
  }
  const config = {
    ...RECIPE,
    threads: THREADS,
    keepGoing: KEEP_GOING,
    probe: PROBE,
    shape: evalSet.shape,
  };
  await fs.writeFile(join(dir, 'config.json'), JSON.stringify(config));
  log(
    `exchange directory ${dir}; base ${baseDir()}; ${train.n} training, ${evalSet.n} validation images`,
  );

  const results: SideResult[] = [];
  try {
    if (SIDES.includes('prg')) results.push(await runPrg());
    if (SIDES.includes('torch')) {
      const t = await runTorch(dir);
      if (t) results.push(t);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  report(results, config);

  async function runPrg(): Promise<SideResult> {
    const loadBefore = loads();
    const t0 = Date.now();
    const step = await FineTuneStep.create(
      nets.prepared.velocity,
      nets.prepared.head,
      {
        batch: RECIPE.batch,
        classes: nets.classes.length,
        solver: RECIPE.solver,
        steps: RECIPE.k,
        tStar: RECIPE.tStar,
        pool: bm.featurePool,
        lambdaFlow: RECIPE.lambdaFlow,
        freezeFlow: false,
        mode: 'direct',
      },
      { threads: THREADS },
    );
    const setupS = (Date.now() - t0) / 1000;
    const trainable = new ParamStore();
    for (const n of step.trainable) {
      const p = nets.params.get(n);
      trainable.set(n, p.dims, p.data);
    }
    const opt = new AdamW({ weightDecay: RECIPE.weightDecay, eps: 1e-8, betas: [0.9, 0.999] });
    const interp = makeInterpolant(bm.interpolant);
    const dims = [bm.input.channels, bm.input.height, bm.input.width];
    const d = dims[0] * dims[1] * dims[2];
    const curve: CurvePoint[] = [];
    const stepWallMs: number[] = [];
    const stepCpuMs: number[] = [];
    let wallS = 0;
    let cpuS = 0;
    let evalS = 0;
    const measure = async (s: number) => {
      const e0 = Date.now();
      const accuracy = await evaluate();
      evalS += (Date.now() - e0) / 1000;
      curve.push({ step: s, wallS, cpuS, accuracy });
      log(
        `prg step ${s}: validation ${(accuracy * 100).toFixed(1)} % after ${wallS.toFixed(1)} s wall, ${cpuS.toFixed(1)} s CPU`,
      );
      return accuracy;
    };
    const last = RECIPE.thresholds[RECIPE.thresholds.length - 1];
    await measure(0);
    try {
      for (let s = 0; s < RECIPE.steps; s++) {
        const w0 = process.hrtime.bigint();
        const c0 = cpuNow();
        const idx = order.subarray(s * RECIPE.batch, (s + 1) * RECIPE.batch);
        const x = new Float32Array(RECIPE.batch * d);
        const y = new Int32Array(RECIPE.batch);
        for (let i = 0; i < RECIPE.batch; i++) {
          const px = train.images.subarray(idx[i] * d, (idx[i] + 1) * d);
          for (let j = 0; j < d; j++) x[i * d + j] = px[j] / 127.5 - 1;
          y[i] = labels[train.labels[idx[i]]];
        }
        const fm = flowMatchingBatch(interp, x, RECIPE.batch, new Rng(`${RECIPE.seed}:ft-fm:${s}`));
        const r = await step.run(
          nets.params,
          { x, target: smoothTargets(y, nets.classes.length, RECIPE.labelSmoothing), fm },
          dims,
        );
        if (!Number.isFinite(r.loss)) throw new Error(`prg: loss ${r.loss} at step ${s}`);
        opt.step(trainable, r.grads, RECIPE.lr);
        const dw = Number(process.hrtime.bigint() - w0) / 1e9;
        const dc = cpuNow() - c0;
        wallS += dw;
        cpuS += dc;
        stepWallMs.push(dw * 1000);
        stepCpuMs.push(dc * 1000);
        if ((s + 1) % RECIPE.evalEvery === 0 || s + 1 === RECIPE.steps) {
          const acc = await measure(s + 1);
          if (acc >= last && !KEEP_GOING) break;
        }
      }
    } finally {
      await step.release();
    }
    return {
      side: 'prg',
      curve,
      stepWallMs,
      stepCpuMs,
      setupS,
      evalS,
      loadBefore,
      loadAfter: loads(),
    };
  }
}

function python(): string | null {
  for (const py of [env.PRG_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean)) {
    const r = spawnSync(py as string, ['-c', 'import torch, numpy'], { stdio: 'ignore' });
    if (r.status === 0) return py as string;
  }
  return null;
}

/** bench/torch_tta.py on the exchange directory; its progress goes to our stderr. */
async function runTorch(dir: string): Promise<SideResult | null> {
  const py = python();
  if (!py) {
    emit({ side: 'torch', error: 'no python with torch and numpy (set PRG_PYTHON)' });
    return null;
  }
  let script = join(__dirname, 'torch_tta.py');
  if (!existsSync(script)) script = join(__dirname, '..', '..', 'bench', 'torch_tta.py');
  const loadBefore = loads();
  const out = await new Promise<string>((res, rej) => {
    const c = spawn(py, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.on('error', rej);
    c.on('close', (code) =>
      code === 0 ? res(stdout) : rej(new Error(`torch_tta.py exited with ${code}`)),
    );
  });
  const rec = JSON.parse(out.trim().split('\n').pop() ?? '{}') as {
    curve: { step: number; wall_s: number; cpu_s: number; accuracy: number }[];
    step_wall_ms: number[];
    step_cpu_ms: number[];
    setup_s: number;
    eval_s: number;
    [k: string]: unknown;
  };
  const { curve, step_wall_ms, step_cpu_ms, setup_s, eval_s, ...extra } = rec;
  return {
    side: 'torch',
    curve: curve.map((c) => ({
      step: c.step,
      wallS: c.wall_s,
      cpuS: c.cpu_s,
      accuracy: c.accuracy,
    })),
    stepWallMs: step_wall_ms,
    stepCpuMs: step_cpu_ms,
    setupS: setup_s,
    evalS: eval_s,
    loadBefore,
    loadAfter: loads(),
    extra,
  };
}

const r1 = (v: number | null) => (v === null ? null : Number(v.toFixed(1)));

function report(results: SideResult[], config: Record<string, unknown>): void {
  const th = RECIPE.thresholds;
  const by: Record<string, { crossings: ReturnType<typeof crossings>; r: SideResult }> = {};
  for (const r of results) {
    by[r.side] = { crossings: crossings(r.curve, th), r };
    emit({
      side: r.side,
      steps: r.stepWallMs.length,
      step_wall_ms_median: r1(median(r.stepWallMs)),
      step_cpu_ms_median: r1(median(r.stepCpuMs)),
      train_wall_s: r1(r.curve[r.curve.length - 1].wallS),
      train_cpu_s: r1(r.curve[r.curve.length - 1].cpuS),
      final_accuracy: r.curve[r.curve.length - 1].accuracy,
      setup_s: r1(r.setupS),
      eval_s: r1(r.evalS),
      load_before: r.loadBefore,
      load_after: r.loadAfter,
      curve: r.curve.map((c) => [c.step, r1(c.wallS), r1(c.cpuS), c.accuracy]),
      ...(r.extra ?? {}),
    });
  }
  const p = by.prg;
  const t = by.torch;
  th.forEach((threshold, i) => {
    const a = p?.crossings[i];
    const b = t?.crossings[i];
    emit({
      threshold,
      prg_step: a?.step ?? null,
      prg_wall_s: r1(a?.wallS ?? null),
      prg_cpu_s: r1(a?.cpuS ?? null),
      torch_step: b?.step ?? null,
      torch_wall_s: r1(b?.wallS ?? null),
      torch_cpu_s: r1(b?.cpuS ?? null),
      wall_ratio_prg_over_torch: ratio(a?.wallS, b?.wallS),
      cpu_ratio_prg_over_torch: ratio(a?.cpuS, b?.cpuS),
    });
  });
  emit({
    summary: true,
    step_wall_ratio_prg_over_torch: ratio(
      median(p?.r.stepWallMs ?? []),
      median(t?.r.stepWallMs ?? []),
    ),
    step_cpu_ratio_prg_over_torch: ratio(
      median(p?.r.stepCpuMs ?? []),
      median(t?.r.stepCpuMs ?? []),
    ),
    forward_max_abs_diff: t?.r.extra?.forward_max_abs_diff ?? null,
    torch_version: t?.r.extra?.torch_version ?? null,
    base: baseDir(),
    cpus: os.cpus().length,
    recipe: config,
  });
}

main()
  .then(async () => {
    // The report (npm run report) reads runs/tta/<name>/tta.json: the lines above, with provenance.
    if (env.TTA_OUT)
      await writeJson(env.TTA_OUT, {
        kind: TTA_KIND,
        commit: gitCommit(),
        command: `${Object.keys(env)
          .filter((k) => /^(BENCH_|TTA_|PRG_THREADS$|PRG_PYTHON$)/.test(k))
          .sort()
          .map((k) => `${k}=${env[k]} `)
          .join('')}node dist/bench/tta.js`,
        machine: machine(),
        createdAt: new Date().toISOString(),
        lines: emitted,
      });
  })
  .catch((e: unknown) => {
    console.error((e as Error).stack ?? e);
    process.exitCode = 1;
  });
