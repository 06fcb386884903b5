import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPrgModel } from '../inference';
import { readModelDir } from '../model-dir/io';
import { writeIdxPair } from '../data';
import { tinyDataset } from '../testing/tiny-data';
import { createTinyModel } from '../testing/tiny-model';
import { LabeledImages } from './data';
import { evaluateOod, formatOodTable } from './evaluate';
import { fitOod, fitOodFromSpecs } from './fit';
import { guardCheck, selectRobust } from './selection';
import { ProbeRng } from './likelihood';
import { ensembleOf, fitEnsemble, oodScorerFactory, scorersFromStats } from './scorers';
import { OodStatsFile } from './stats';

const S: [number, number, number] = [1, 8, 8];
const D = 64;

/** Class k: a bright horizontal bar at rows 2k..2k+1 on a dark, noisy background. */
function bars(n: number, seed: number, name: string): LabeledImages {
  const rng = new ProbeRng(seed);
  const data = new Float32Array(n * D);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % 3;
    labels[i] = k;
    for (let p = 0; p < D; p++) {
      const row = Math.floor(p / 8);
      const on = row === 2 * k + 1 || row === 2 * k + 2;
      data[i * D + p] = Math.max(-1, Math.min(1, (on ? 0.8 : -0.9) + 0.1 * rng.normal()));
    }
  }
  return { data, n, shape: S, labels, classes: ['0', '1', '2'], name };
}

/** Out-of-distribution: a vertical bar. */
function verticals(n: number, seed: number): LabeledImages {
  const rng = new ProbeRng(seed);
  const data = new Float32Array(n * D);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < D; p++) {
      const col = p % 8;
      const on = col === 2 + (i % 4);
      data[i * D + p] = Math.max(-1, Math.min(1, (on ? 0.8 : -0.9) + 0.1 * rng.normal()));
    }
  return { data, n, shape: S, name: 'verticals' };
}

const ALL_SCORES = [
  'complexity_ratio',
  'energy',
  'ensemble',
  'likelihood',
  'mahalanobis',
  'mahalanobis_deep',
  'mahalanobis_hidden',
  'msp',
  'relative_mahalanobis',
  'relative_mahalanobis_hidden',
];

let root: string;
let dir: string;
const lik = { solver: 'euler' as const, steps: 2, probes: 1 };

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-ood-'));
  dir = (await createTinyModel(join(root, 'm'), { classes: 3, inputShape: S })).dir;
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('fitOod and evaluateOod on a tiny model', () => {
  it('writes ood.json and a 95 %-TPR threshold per score into the model directory', async () => {
    const r = await fitOod(dir, bars(90, 1, 'bars:train'), bars(40, 2, 'bars:heldout'), {
      likelihood: lik,
      batchSize: 16,
      threads: 1,
    });
    expect(Object.keys(r.thresholds).sort()).toEqual(ALL_SCORES);
    expect(r.nTrain).toBe(90);
    expect(r.nHeldout).toBe(40);
    const loaded = await readModelDir(dir);
    expect(loaded.manifest.files.ood).toBe('ood.json');
    expect(loaded.manifest.ood?.primary).toBe(r.primary);
    expect(loaded.manifest.ood?.scores.mahalanobis.tpr).toBe(0.95);
    const stats = loaded.ood as { schema: string; ensemble: { components: string[] } };
    expect(stats.schema).toBe('prg.ood/v1');
    expect(stats.ensemble.components).toEqual([
      'mahalanobis',
      'mahalanobis_hidden',
      'complexity_ratio',
    ]);
  });

  it('a model loaded with the registered factory reproduces the calibration: ≥ 95 % of held-out pass', async () => {
    const model = await loadPrgModel(dir, { threads: 1, oodFactories: [oodScorerFactory] });
    try {
      expect(model.oodScoreNames.sort()).toEqual(ALL_SCORES);
      const held = bars(40, 2, 'bars:heldout');
      const s = await model.oodScores({ data: held.data, n: held.n });
      for (const [k, t] of Object.entries(model.manifest.ood!.scores)) {
        const pass = Array.from(s[k]).filter((v) => v >= t.threshold).length;
        expect(pass, k).toBeGreaterThanOrEqual(38); // ⌈0.95·40⌉
      }
      // The vertical bars are far from every class mean of x_t*.
      const out = verticals(8, 3);
      const so = await model.oodScores({ data: out.data, n: out.n });
      const t = model.manifest.ood!.scores.mahalanobis.threshold;
      expect(Array.from(so.mahalanobis).every((v) => v < t)).toBe(true);
      // classify computes only the scores asked for, equal to oodScores' (the server's path).
      const cls = await model.classify({ data: out.data, n: out.n }, { ood: ['mahalanobis'] });
      expect(Object.keys(cls.ood!)).toEqual(['mahalanobis']);
      const same = Array.from(cls.ood!.mahalanobis).map((v, i) => Math.abs(v - so.mahalanobis[i]));
      expect(Math.max(...same)).toBeLessThanOrEqual(1e-3 * Math.abs(t));
    } finally {
      await model.release();
    }
  });

  it('ood-eval reports the four metrics for every score', async () => {
    const r = await evaluateOod(dir, bars(30, 5, 'bars:test'), verticals(24, 6), {
      limit: 20,
      batchSize: 8,
      threads: 1,
    });
    expect(r.n_in).toBe(20);
    expect(r.n_out).toBe(20);
    expect(Object.keys(r.scores)).toContain('mahalanobis');
    expect(Object.keys(r.scores)).toContain('likelihood');
    for (const m of Object.values(r.scores))
      for (const v of [m.auroc, m.aupr_in, m.aupr_out, m.fpr95]) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
    expect(r.scores.mahalanobis.auroc).toBeGreaterThan(0.95);
    // The primary at the threshold stored by the fit: flags few in-distribution bars and most
    // of the verticals (the same verticals every Mahalanobis threshold rejects, test above).
    expect(r.primary!.score).toBe('mahalanobis');
    expect(r.primary!.in_flagged).toBeLessThanOrEqual(0.25);
    expect(r.primary!.out_flagged).toBeGreaterThanOrEqual(0.75);
    expect(formatOodTable(r)).toMatch(/primary mahalanobis at its stored threshold .* flags \d/);
    // bits/dim = −likelihood score: positive, and around 8 for an untrained flow on [−1, 1] images
    expect(r.bits_per_dim!.in).toBeGreaterThan(1);
    expect(r.bits_per_dim!.in).toBeLessThan(20);
    expect(formatOodTable(r)).toMatch(/mean bits\/dim: in \d/);
    const table = formatOodTable(r);
    expect(table).toMatch(/AUROC/);
    expect(table).toMatch(/mahalanobis_hidden/);
    const noLik = await evaluateOod(dir, bars(10, 5, 'a'), verticals(10, 6), {
      likelihood: false,
      threads: 1,
    });
    expect(Object.keys(noLik.scores)).not.toContain('likelihood');
  });

  it('an ood.json written before the relative scores existed loads without them', async () => {
    const loaded = await readModelDir(dir);
    const stats = structuredClone(loaded.ood) as OodStatsFile;
    expect(stats.mahalanobis.background?.features?.classes).toBe(1);
    delete stats.mahalanobis.background;
    const names = scorersFromStats(stats, loaded).map((x) => x.name);
    expect(names).toContain('mahalanobis_hidden');
    expect(names.filter((n) => n.startsWith('relative_'))).toEqual([]);
  });

  it('holds out part of the training set when no held-out set is given, and checks shapes', async () => {
    const r = await fitOod(dir, bars(60, 7, 'bars:train'), undefined, {
      threads: 1,
    });
    expect(r.nHeldout).toBe(6);
    expect(r.nTrain).toBe(54);
    expect(r.thresholds.likelihood).toBeUndefined();
    expect(r.thresholds.ensemble).toBeDefined(); // the two Mahalanobis scores
    const wrong: LabeledImages = {
      data: new Float32Array(4 * 16),
      n: 4,
      shape: [1, 4, 4],
      name: 'x',
    };
    await expect(fitOod(dir, wrong)).rejects.toThrow(/4×4, the model takes 1×8×8/);
  });
});

describe('choosing the primary score on validation out-of-distribution images', () => {
  it('selectRobust takes the best worst-case AUROC over the sets (ties by the mean)', () => {
    const held = { a: [1, 2, 3], b: [5, 6, 7], c: [5, 6, 7], d: [5, 6, 7] };
    const sets = [
      {
        name: 's1',
        kind: 'noise',
        n: 3,
        scores: { a: [0, 0, 0], b: [0, 1, 2], c: [6, 6, 6], d: [6, 8, 9] },
      },
      {
        name: 's2',
        kind: 'noise',
        n: 3,
        scores: { a: [0, 0, 0], b: [4, 6, 6], c: [0, 0, 0], d: [0, 0, 0] },
      },
    ];
    const r = selectRobust(held, sets, ['a', 'b', 'c', 'd']);
    // AUROC = (wins + ½ ties)/9. a: 1 and 1; b: 1 and (5 + ½·2)/9 = 2/3; c: (3 + ½·3)/9 = ½
    // and 1; d: (1 + ½·1)/9 and 1.
    expect(r.aurocBySet.a).toEqual({ s1: 1, s2: 1 });
    expect(r.auroc.c).toBeCloseTo(0.5, 12);
    expect(r.auroc.b).toBeCloseTo(2 / 3, 12);
    expect(r.auroc.d).toBeCloseTo(1.5 / 9, 12);
    expect(r.meanAuroc.c).toBeCloseTo(0.75, 12);
    expect(r.chosen).toBe('a');
    // Only the eligible scores compete.
    expect(selectRobust(held, sets, ['b', 'c']).chosen).toBe('b');
    expect(() => selectRobust(held, sets, ['e'])).toThrow(/no score/);
  });

  it('guardCheck: fraction below each threshold, and who flags every set often enough', () => {
    const sets = [
      { name: 'noise', kind: 'noise', n: 4, scores: { a: [0, 0, 0, 5], b: [0, 0, 0, 0] } },
    ];
    const g = guardCheck({ a: { threshold: 1 }, b: { threshold: 1 } }, sets, 0.99);
    expect(g.flagged).toEqual({ a: { noise: 0.75 }, b: { noise: 1 } });
    expect(g.passing).toEqual(['b']);
  });

  it('fitOod chooses among the scores that pass the guard, on synthetic and user sets, and records it', async () => {
    const warnings: string[] = [];
    const r = await fitOod(dir, bars(60, 31, 'bars:train'), bars(30, 32, 'bars:heldout'), {
      selectPrimaryWith: verticals(20, 33),
      syntheticPerSet: 40,
      threads: 1,
      onWarning: (m) => warnings.push(m),
    });
    const sel = r.primarySelection!;
    const guard = r.guard!;
    expect(sel.outDataset).toBe('verticals');
    expect([sel.nIn, sel.nOut]).toEqual([30, 20]);
    expect(sel.sets.map((x) => x.name)).toEqual([
      'uniform_noise',
      'smooth_noise',
      'constant_mid',
      'low_contrast(bars:heldout)',
      'verticals',
    ]);
    expect(Object.keys(sel.aurocBySet).sort()).toEqual(Object.keys(r.thresholds).sort());
    // Candidates: the scores that flag ≥ 99 % of every guard set (all of them when none does).
    const candidates = guard.passing.length ? guard.passing : Object.keys(r.thresholds);
    expect(Object.keys(sel.auroc).sort()).toEqual([...candidates].sort());
    for (const [k, worst] of Object.entries(sel.auroc))
      expect(worst).toBe(Math.min(...Object.values(sel.aurocBySet[k])));
    expect(sel.auroc[sel.chosen]).toBe(Math.max(...Object.values(sel.auroc)));
    expect(r.primary).toBe(sel.chosen);
    expect(guard.sets.map((x) => x.name)).toEqual([
      'uniform_noise',
      'smooth_noise',
      'constant_mid',
    ]);
    expect(guard.action).toBe(guard.passing.length ? 'kept' : 'failed');
    expect(warnings.length).toBe(guard.passing.length ? 0 : 1);
    const loaded = await readModelDir(dir);
    expect(loaded.manifest.ood?.primary).toBe(sel.chosen);
    const stats = loaded.ood as { fit: { primarySelection: unknown; guard: unknown } };
    expect(stats.fit.primarySelection).toEqual(sel);
    expect(stats.fit.guard).toEqual(guard);
    await expect(
      fitOod(dir, bars(60, 31, 'bars:train'), undefined, {
        primary: 'msp',
        selectPrimaryWith: verticals(4, 1),
      }),
    ).rejects.toThrow(/either primary or selectPrimaryWith/);
  });

  it('the guard falls back from a given primary that misses noise, or refuses', async () => {
    const base = { syntheticPerSet: 40, threads: 1 };
    const train = bars(60, 31, 'bars:train');
    const held = bars(30, 32, 'bars:heldout');
    const first = await fitOod(dir, train, held, base);
    const g = first.guard!;
    const failing = Object.keys(g.flagged).find((k) => !g.passing.includes(k));
    // The untrained model's scores do not all flag noise; if they did, this test would test nothing.
    expect(failing).toBeDefined();
    expect(g.passing.length).toBeGreaterThan(0);
    const warnings: string[] = [];
    const r = await fitOod(dir, train, held, {
      ...base,
      primary: failing,
      onWarning: (m) => warnings.push(m),
    });
    expect(r.guard!.requested).toBe(failing);
    expect(r.guard!.action).toBe('fallback');
    expect(g.passing).toContain(r.primary);
    expect(r.primary).toBe(first.primary); // the best passing score on the validation sets
    expect(warnings[0]).toMatch(new RegExp(`primary ${failing} flags too few.*falling back`));
    expect((await readModelDir(dir)).manifest.ood?.primary).toBe(r.primary);
    await expect(
      fitOod(dir, train, held, { ...base, primary: failing, guard: 'refuse' }),
    ).rejects.toThrow(/OOD guard.*refused/);
    // A bar nothing can pass: 'fallback' keeps the choice and says so loudly.
    const none = await fitOod(dir, train, held, {
      ...base,
      guardMinFlagged: 1.01,
      onWarning: (m) => warnings.push(m),
    });
    expect(none.guard!.passing).toEqual([]);
    expect(none.guard!.action).toBe('failed');
    expect(warnings.at(-1)).toMatch(/no score passes the guard/);
    const off = await fitOod(dir, train, held, { ...base, guard: 'off', primary: failing });
    expect([off.primary, off.guard]).toEqual([failing, undefined]);
  });
});

describe('a model that pools x_t* before its head', () => {
  it('fits Mahalanobis on the pooled features the head sees', async () => {
    const pooled = (
      await createTinyModel(join(root, 'pooled'), { classes: 3, inputShape: S, featurePool: 2 })
    ).dir;
    const r = await fitOod(pooled, bars(60, 21, 'bars:train'), bars(30, 22, 'bars:heldout'), {
      threads: 1,
    });
    const stats = (await readModelDir(pooled)).ood as {
      mahalanobis: { features: { dim: number } };
    };
    expect(stats.mahalanobis.features.dim).toBe(4); // 1 channel pooled to 2×2
    expect(r.thresholds.mahalanobis).toBeDefined();
  });
});

describe('fitOodFromSpecs (what a fine-tuning job calls)', () => {
  it('loads the specs and fits, holding out the evaluation set', async () => {
    const ds = tinyDataset({ n: 40, classes: 3, seed: 11 });
    const ev = tinyDataset({ n: 20, classes: 3, seed: 12 });
    const names = ['0', '1', '2'];
    ds.classes = names;
    ev.classes = names;
    const files = ['a', 'b', 'c', 'd'].map((f) => join(root, `spec-${f}.idx`));
    await writeIdxPair(ds, files[0], files[1]);
    await writeIdxPair(ev, files[2], files[3]);
    const r = await fitOodFromSpecs(
      dir,
      `idx:${files[0]},${files[1]}`,
      `idx:${files[2]},${files[3]}`,
      {
        threads: 1,
      },
    );
    expect(r.nTrain).toBe(40);
    expect(r.nHeldout).toBe(20);
    expect(r.primary).toBe(r.primarySelection!.chosen);
    expect(r.guard!.requested).toBe(r.primary);
  });
});

describe('ensemble score', () => {
  it('averages scores standardised on held-out data (hand-computed)', () => {
    const held = { a: [1, 3], b: [10, 30] }; // means 2, 20; sample s.d. √2, 10√2
    const e = fitEnsemble(['a', 'b'], held);
    expect(e.mean).toEqual([2, 20]);
    expect(e.std[0]).toBeCloseTo(Math.SQRT2, 12);
    expect(e.std[1]).toBeCloseTo(10 * Math.SQRT2, 12);
    const s = ensembleOf(e, { a: [2, 4], b: [20, 0] }, 2);
    expect(s[0]).toBeCloseTo(0, 6);
    expect(s[1]).toBeCloseTo((2 / Math.SQRT2 + -20 / (10 * Math.SQRT2)) / 2, 6);
    expect(() => ensembleOf(e, { a: [1] }, 1)).toThrow(/component score b/);
  });
});
