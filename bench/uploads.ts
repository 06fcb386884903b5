/**
 * "auto" job defaults on few-shot uploads (issue 16, docs/training.md): each case makes an upload
 * from a built-in dataset — K classes, n training images per class (the first n of each class in
 * the train split) — runs the fine-tune job's trainer (fineTuneModel, no hyperparameters given)
 * and the job's OOD fit (fitOodFromSpecs) on it, then measures accuracy on held-out images of the
 * same classes (the first `BENCH_HELDOUT` per class of the test split, never seen by the job).
 *
 *   node dist/bench/uploads.js BASE_MODEL_DIR DATASET:CLASS,CLASS,...:N [...]
 *   e.g. node dist/bench/uploads.js models/prg-mnist fashion-mnist:1,8,9:200
 *
 * Prints one JSON object per case: held-out accuracy, train/OOD-fit/job wall seconds, the job's
 * CPU seconds, the phases.
 *
 * Comparing rules (never on the test split): BENCH_HELDOUT_SPLIT=train measures on train-split
 * images after each class's upload images; BENCH_AUTO_RULE='{"head":{"images":20000}}' replaces
 * fields of AUTO_RULE; BENCH_SKIP_OOD=1 leaves out the OOD fit.
 */
import { promises as fs } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageDataset, loadDataset, subset, writeIdxPair } from '../src/prg/data';
import { loadPrgModel } from '../src/prg/inference';
import { fitOodFromSpecs } from '../src/prg/ood/fit';
import { evaluateModel } from '../src/prg/training/evaluate';
import { fineTuneModel } from '../src/prg/training/finetune-job';
import { AUTO_RULE, AutoRule, autoPhases } from '../src/prg/training/hyperparameters';

type Json = Record<string, unknown>;

/** AUTO_RULE with the fields of `o` replaced (head and flow field by field). */
function autoRuleWith(o: Json): AutoRule {
  const phase = (k: 'head' | 'flow') => ({ ...AUTO_RULE[k], ...((o[k] as Json) ?? {}) });
  return { ...AUTO_RULE, ...o, head: phase('head'), flow: phase('flow') } as AutoRule;
}

/**
 * `perClass` images of each of `classes` (by index), after skipping the first `skip` of each,
 * relabelled 0..K-1.
 */
function pick(ds: ImageDataset, classes: number[], perClass: number, skip = 0): ImageDataset {
  const idx: number[] = [];
  const seen = new Map<number, number>();
  for (let i = 0; i < ds.n; i++) {
    const c = ds.labels[i];
    if (!classes.includes(c)) continue;
    const k = seen.get(c) ?? 0;
    seen.set(c, k + 1);
    if (k >= skip && k < skip + perClass) idx.push(i);
  }
  const s = subset(ds, idx);
  return {
    ...s,
    labels: Int32Array.from(s.labels, (l) => classes.indexOf(l)),
    classes: classes.map((c) => ds.classes[c]),
  };
}

async function main(): Promise<void> {
  const [baseDir, ...cases] = process.argv.slice(2);
  if (!baseDir || !cases.length)
    throw new Error('usage: node dist/bench/uploads.js BASE_MODEL_DIR DATASET:C,C,...:N [...]');
  const heldoutPerClass = Number(process.env.BENCH_HELDOUT ?? 100);
  // Choosing a rule: validation images from the train split, after each class's upload images.
  const validation = process.env.BENCH_HELDOUT_SPLIT === 'train';
  const rule: AutoRule = autoRuleWith(JSON.parse(process.env.BENCH_AUTO_RULE ?? '{}') as Json);
  const skipOod = process.env.BENCH_SKIP_OOD === '1';
  const root = await fs.mkdtemp(join(tmpdir(), 'prg-uploads-'));
  try {
    for (const c of cases) {
      const [name, cls, n] = c.split(':');
      const classes = cls.split(',').map(Number);
      const trainSplit = await loadDataset(`${name}:train`);
      const train = pick(trainSplit, classes, Number(n));
      const heldout = validation
        ? pick(trainSplit, classes, heldoutPerClass, Number(n))
        : pick(await loadDataset(`${name}:test`), classes, heldoutPerClass);
      const dir = join(root, c.replace(/[^A-Za-z0-9]+/g, '_'));
      await fs.mkdir(dir);
      const spec = `idx:${join(dir, 'images.idx')},${join(dir, 'labels.idx')}`;
      await writeIdxPair(train, join(dir, 'images.idx'), join(dir, 'labels.idx'));
      const load0 = loadavg()[0];
      const cpu0 = process.cpuUsage();
      const t0 = Date.now();
      const r = await fineTuneModel({
        baseModelDir: baseDir,
        dataset: spec,
        hyperparameters: {},
        outputDir: join(dir, 'model'),
        name: 'upload',
        version: '1',
        checkpointDir: join(dir, 'ckpt'),
        autoRule: rule,
      });
      const trainSeconds = (Date.now() - t0) / 1000;
      const trainCpu = process.cpuUsage(cpu0);
      const t1 = Date.now();
      const ood = skipOod ? undefined : await fitOodFromSpecs(r.modelDir, spec);
      const oodSeconds = (Date.now() - t1) / 1000;
      // Every thread of this process (ONNX Runtime's included): the job's cost on a shared machine.
      const cpu = process.cpuUsage(cpu0);
      const model = await loadPrgModel(r.modelDir);
      // The upload's classes are named "0".."K-1" (IDX): the held-out labels use the same indices.
      const ev = await evaluateModel(model, {
        ...heldout,
        classes: heldout.classes.map((_, i) => `${i}`),
      });
      await model.release();
      console.log(
        JSON.stringify({
          case: c,
          base: baseDir,
          classes: train.classes,
          train_images: train.n,
          heldout_images: ev.n,
          heldout_accuracy: ev.accuracy,
          train_seconds: trainSeconds,
          ood_fit_seconds: oodSeconds,
          job_seconds: trainSeconds + oodSeconds,
          job_cpu_seconds: (cpu.user + cpu.system) / 1e6,
          train_cpu_seconds: (trainCpu.user + trainCpu.system) / 1e6,
          ood_primary: ood?.primary ?? null,
          heldout_split: validation ? 'train (after the upload images)' : 'test',
          auto_rule: rule,
          phases: autoPhases(train.n, {}, rule),
          phase_seconds: r.phases,
          cores: cpus().length,
          cpu: cpus()[0]?.model,
          load_average_at_start: load0,
          threads: process.env.PRG_THREADS ?? 'ort-default',
        }),
      );
    }
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
