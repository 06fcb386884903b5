/**
 * One model's generative and OOD figures as data (`prg analyze`, read by `prg report`):
 *
 *   <out>/analysis.json          numbers (shape: ModelAnalysis below, docs/generation.md)
 *   <out>/samples-<solver>-<K>.png   sample grids per number of steps
 *   <out>/trajectories.png       reverse trajectories of test images, t = 0 → 1 left to right
 *
 * - noise statistics of x_1 = reverse ODE of test images (noise-stats.ts);
 * - sample quality: FID in a classifier's features (classifier-features.ts) between `n` samples
 *   and `n` test images, per solver and K, beside the same distance between two disjoint sets of
 *   `n` test images (the floor at that sample size: FID is biased upward for finite n);
 * - OOD scores (the manifest's primary score) of in- and out-of-distribution test images, for
 *   the report's histograms.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../engine/runtime/checkpoint';
import { ImageDataset, head } from '../data';
import { PrgModel } from '../inference';
import { SolverName } from '../manifest';
import { commandLine, gitCommit } from '../model-dir/provenance';
import { loadDatasetFor } from '../training/evaluate';
import { ClassifierFeatures } from './classifier-features';
import { frechetDistanceOf } from './fid';
import { imageGridPng } from './grid';
import { NoiseStats, reverseNoiseStats } from './noise-stats';

export const ANALYSIS_FILE = 'analysis.json';
export const ANALYSIS_KIND = 'prg.analysis/v1';

export interface SampleQualityRow {
  solver: SolverName;
  steps: number;
  fid: number;
  /** Wall seconds to generate the n samples. */
  seconds: number;
}

export interface ModelAnalysis {
  kind: typeof ANALYSIS_KIND;
  model: string;
  modelDir: string;
  interpolant: string;
  data: string;
  commit: string;
  command: string;
  machine: { cpus: number; cpu: string; memoryGiB: number; loadAverage: number[] };
  createdAt: string;
  noiseStats: NoiseStats | null;
  sampleQuality: {
    featureModel: string;
    featureModelId: string;
    n: number;
    seed: number;
    /** FID between test images [0, n) and [n, 2n): the floor of the figure at this n. */
    realVsReal: number;
    rows: SampleQualityRow[];
  } | null;
  samples: { solver: SolverName; steps: number; seed: number; n: number; file: string }[];
  trajectories: {
    file: string;
    images: number;
    frames: number;
    solver: string;
    steps: number;
  } | null;
  ood: { score: string; inData: string; outData: string; in: number[]; out: number[] } | null;
}

export interface AnalyzeOptions {
  model: PrgModel;
  modelDir: string;
  out: string;
  /** Test data spec (e.g. mnist:test). */
  data: string;
  /** Out-of-distribution data for the OOD histogram (skipped when absent). */
  oodData?: string;
  /** Classifier for the FID features (skipped when absent). */
  featureModelDir?: string;
  /** Images for noise stats, FID sets and OOD (default 1000). */
  n?: number;
  /** K values for the samples and FID (default 1, 2, 5, 10, 20). */
  steps?: number[];
  solvers?: SolverName[];
  /** Reverse-process steps for the noise statistics and trajectories (default 20). */
  reverseSteps?: number;
  seed?: number;
  threads?: number;
  command?: string;
  onProgress?: (what: string) => void;
  /** Already-loaded data (tests); the specs are then only recorded. */
  datasets?: { test?: ImageDataset; ood?: ImageDataset };
}

const toInput = (ds: ImageDataset, n: number): Float32Array => {
  const d = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const px = ds.images.subarray(0, n * d);
  return Float32Array.from(px, (p) => p / 127.5 - 1);
};

/** The test images in the model's input space and their layout. */
interface TestImages {
  /** 2n images: [0, n) against the samples, [n, 2n) for the real-vs-real floor. */
  x0: Float32Array;
  first: Float32Array;
  n: number;
  /** Values per image, and [C, H, W]. */
  d: number;
  chw: [number, number, number];
}

const TRAJECTORY_IMAGES = 8;
const TRAJECTORY_FRAMES = 9;

/** Reverse trajectories of the first test images as one PNG (rows: images; columns: t = 0 → 1). */
async function writeTrajectories(
  m: PrgModel,
  t: TestImages,
  steps: number,
  out: string,
): Promise<NonNullable<ModelAnalysis['trajectories']>> {
  const { d, first } = t;
  const traj = new Float32Array(TRAJECTORY_IMAGES * TRAJECTORY_FRAMES * d);
  for (let i = 0; i < TRAJECTORY_IMAGES; i++) {
    const r = await m.trajectory(first.slice(i * d, (i + 1) * d), {
      frames: TRAJECTORY_FRAMES,
      steps,
      solver: 'euler',
    });
    traj.set(r.data, i * TRAJECTORY_FRAMES * d);
  }
  const file = 'trajectories.png';
  await writeFileAtomic(
    join(out, file),
    await imageGridPng(traj, [TRAJECTORY_IMAGES * TRAJECTORY_FRAMES, ...t.chw], {
      cols: TRAJECTORY_FRAMES,
      scale: 3,
    }),
  );
  return {
    file,
    images: TRAJECTORY_IMAGES,
    frames: TRAJECTORY_FRAMES,
    solver: 'euler',
    steps,
  };
}

/**
 * n samples per solver and K: a grid PNG of the first 64 each and, given a classifier, their FID
 * in its features against the first n test images (and the test-vs-test floor).
 */
async function samplesAndQuality(
  m: PrgModel,
  t: TestImages,
  o: AnalyzeOptions,
  say: (msg: string) => void,
): Promise<Pick<ModelAnalysis, 'samples' | 'sampleQuality'>> {
  const { n, d, x0, first } = t;
  const stepsList = o.steps ?? [1, 2, 5, 10, 20];
  const seed = o.seed ?? 0;
  const samples: ModelAnalysis['samples'] = [];
  const features = o.featureModelDir
    ? await ClassifierFeatures.load(o.featureModelDir, { threads: o.threads })
    : null;
  try {
    const realA = features ? await features.of(first, n) : null;
    const realB = features ? await features.of(x0.slice(n * d), n) : null;
    const rows: SampleQualityRow[] = [];
    for (const solver of o.solvers ?? ['euler'])
      for (const steps of solver === 'dopri5' ? [stepsList[stepsList.length - 1]] : stepsList) {
        say(`${n} samples, ${solver}, K = ${steps}`);
        const t0 = Date.now();
        const s = await m.sample({ n, steps, solver, seed });
        const seconds = (Date.now() - t0) / 1000;
        const file = `samples-${solver}-${steps}.png`;
        const shown = Math.min(64, n);
        await writeFileAtomic(
          join(o.out, file),
          await imageGridPng(s.data.subarray(0, shown * d), [shown, ...t.chw], {
            cols: 8,
            scale: 2,
          }),
        );
        samples.push({ solver, steps, seed, n: shown, file });
        if (features && realA) {
          const f = await features.of(s.data, n);
          rows.push({
            solver,
            steps,
            fid: frechetDistanceOf(f, n, realA, n, features.dim),
            seconds,
          });
        }
      }
    const sampleQuality =
      features && realA && realB
        ? {
            featureModel: features.name,
            featureModelId: features.id,
            n,
            seed,
            realVsReal: frechetDistanceOf(realA, n, realB, n, features.dim),
            rows,
          }
        : null;
    return { samples, sampleQuality };
  } finally {
    await features?.release();
  }
}

/**
 * The primary OOD score (the manifest's, when the model was loaded with its scorers; else MSP) of
 * the first n test images and of n images of `oodData`, for the report's histogram.
 */
async function oodScores(
  m: PrgModel,
  t: TestImages,
  o: AnalyzeOptions,
  oodData: string,
  say: (msg: string) => void,
): Promise<NonNullable<ModelAnalysis['ood']>> {
  const { n, d } = t;
  const declared = m.manifest.ood?.primary;
  const primary = declared && m.oodScoreNames.includes(declared) ? declared : 'msp';
  say(`OOD scores (${primary}) of ${o.data} and ${oodData}`);
  const out = head(o.datasets?.ood ?? (await loadDatasetFor(oodData, m.manifest, { limit: n })), n);
  const scoreOf = async (x: Float32Array, count: number): Promise<number[]> => {
    const res: number[] = [];
    for (let s = 0; s < count; s += 64) {
      const k = Math.min(64, count - s);
      const r = await m.classify({ data: x.slice(s * d, (s + k) * d), n: k }, { ood: [primary] });
      const sc = r.ood?.[primary];
      if (!sc || sc.length !== k)
        throw new Error(`OOD score ${primary}: not computed for ${k} images`);
      res.push(...Array.from(sc));
    }
    return res;
  };
  return {
    score: primary,
    inData: o.data,
    outData: oodData,
    in: await scoreOf(t.first, n),
    out: await scoreOf(toInput(out, out.n), out.n),
  };
}

export async function analyzeModel(o: AnalyzeOptions): Promise<ModelAnalysis> {
  const m = o.model;
  const n = o.n ?? 1000;
  const seed = o.seed ?? 0;
  const reverseSteps = o.reverseSteps ?? 20;
  const say = o.onProgress ?? (() => {});
  // The commit of the code that runs now (HEAD may move during a long analysis).
  const commit = gitCommit();
  await fs.mkdir(o.out, { recursive: true });
  const test = head(
    o.datasets?.test ?? (await loadDatasetFor(o.data, m.manifest, { limit: 2 * n })),
    2 * n,
  );
  if (test.n < 2 * n)
    throw new Error(`${o.data} has ${test.n} images; analysis needs 2n = ${2 * n}`);
  const x0 = toInput(test, 2 * n);
  const t: TestImages = {
    x0,
    first: x0.subarray(0, (x0.length / 2) | 0),
    n,
    d: x0.length / (2 * n),
    chw: [test.shape[0], test.shape[1], test.shape[2]],
  };

  say(`noise statistics of x_1 for ${n} images (euler, K = ${reverseSteps})`);
  const noiseStats = await reverseNoiseStats(m, t.first, n, {
    steps: reverseSteps,
    solver: 'euler',
    seed,
  });
  say('reverse trajectories');
  const trajectories = await writeTrajectories(m, t, reverseSteps, o.out);
  const { samples, sampleQuality } = await samplesAndQuality(m, t, o, say);
  const ood = o.oodData ? await oodScores(m, t, o, o.oodData, say) : null;

  const result: ModelAnalysis = {
    kind: ANALYSIS_KIND,
    model: m.id,
    modelDir: o.modelDir,
    interpolant: m.manifest.interpolant,
    data: o.data,
    commit,
    command: o.command ?? commandLine(),
    machine: {
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    },
    createdAt: new Date().toISOString(),
    noiseStats,
    sampleQuality,
    samples,
    trajectories,
    ood,
  };
  await writeFileAtomic(
    join(o.out, ANALYSIS_FILE),
    new TextEncoder().encode(JSON.stringify(result, null, 2) + '\n'),
  );
  return result;
}
