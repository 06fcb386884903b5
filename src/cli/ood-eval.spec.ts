import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeIdxPair } from '../prg/data';
import { readModelDir } from '../prg/model-dir/io';
import { tinyDataset } from '../prg/testing/tiny-data';
import { createTinyModel } from '../prg/testing/tiny-model';
import { UsageError } from './args';
import { oodBenchCommand } from './ood-bench';
import { oodEvalCommand, oodFitCommand } from './ood-eval';
import { runCommand } from './testing/run-command';

let root: string;
let dir: string;
const spec: Record<string, string> = {};

async function idx(name: string, ds: ReturnType<typeof tinyDataset>) {
  const a = join(root, `${name}-images.idx`);
  const b = join(root, `${name}-labels.idx`);
  await writeIdxPair(ds, a, b);
  spec[name] = `idx:${a},${b}`;
}

/** Run a command, returning its exit code and what it wrote to stdout. */
const run = runCommand;

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-ood-cli-'));
  dir = (await createTinyModel(join(root, 'm'), { classes: 3, inputShape: [1, 8, 8] })).dir;
  await idx('train', tinyDataset({ n: 60, classes: 3, seed: 1 }));
  await idx('heldout', tinyDataset({ n: 30, classes: 3, seed: 2 }));
  const out = tinyDataset({ n: 30, classes: 3, seed: 3 });
  out.images = out.images.map((p) => 255 - p); // photographic negative: out of distribution
  await idx('out', out);
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const lik = ['--lik-solver', 'euler', '--lik-steps', '2', '--threads', '1', '--quiet'];

describe('prg ood-fit / ood-eval', () => {
  it('ood-fit writes thresholds into the model; ood-eval --json prints the documented object', async () => {
    const fit = await run(oodFitCommand, [
      '--model',
      dir,
      '--data',
      spec.train,
      '--heldout',
      spec.heldout,
      '--json',
      ...lik,
    ]);
    expect(fit.code).toBe(0);
    const rec = JSON.parse(fit.out);
    expect(rec.nTrain).toBe(60);
    expect(rec.nHeldout).toBe(30);
    const m = (await readModelDir(dir)).manifest;
    expect(Object.keys(m.ood!.scores)).toContain('mahalanobis');

    const ev = await run(oodEvalCommand, [
      '--model',
      dir,
      '--in',
      spec.heldout,
      '--out',
      spec.out,
      '--json',
      '--limit',
      '20',
      ...lik,
    ]);
    expect(ev.code).toBe(0);
    const r = JSON.parse(ev.out);
    expect(Object.keys(r).sort()).toEqual(['n_in', 'n_out', 'scores']);
    expect(r.n_in).toBe(20);
    expect(r.n_out).toBe(20);
    for (const k of ['msp', 'energy', 'mahalanobis', 'mahalanobis_hidden', 'likelihood'])
      expect(Object.keys(r.scores[k]).sort()).toEqual(['aupr_in', 'aupr_out', 'auroc', 'fpr95']);
  });

  it('prints a table without --json', async () => {
    const ev = await run(oodEvalCommand, [
      '--model',
      dir,
      '--in',
      spec.heldout,
      '--out',
      spec.out,
      '--no-likelihood',
      '--threads',
      '1',
      '--quiet',
    ]);
    expect(ev.code).toBe(0);
    expect(ev.out).toMatch(/score\s+AUROC\s+AUPR-in\s+AUPR-out\s+FPR95/);
    expect(ev.out).toMatch(/^mahalanobis\s+\d\.\d{4}/m);
    expect(ev.out).not.toMatch(/^likelihood/m);
  });

  it('reports usage errors naming the flag', async () => {
    await expect(oodEvalCommand(['--model', dir, '--in', spec.heldout])).rejects.toThrow(
      /--out is required/,
    );
    await expect(oodEvalCommand(['--model', dir, '--bogus'])).rejects.toBeInstanceOf(UsageError);
    await expect(
      oodFitCommand(['--model', dir, '--data', spec.train, '--heldout', spec.train]),
    ).rejects.toThrow(/--heldout must differ/);
    await expect(
      oodFitCommand(['--model', dir, '--data', spec.train, '--select-primary-with', spec.train]),
    ).rejects.toThrow(/--select-primary-with must be out-of-distribution/);
    await expect(
      oodFitCommand([
        ...['--model', dir, '--data', spec.train, '--primary', 'msp'],
        ...['--select-primary-with', spec.heldout],
      ]),
    ).rejects.toThrow(/not both/);
  });
});

describe('prg ood-bench', () => {
  it('scores every score against every outlier set, JSON and table', async () => {
    // A fit (its primary chosen on the synthetic validation kinds) for the stored thresholds.
    const fit = await run(oodFitCommand, [
      ...['--model', dir, '--data', spec.train, '--heldout', spec.heldout],
      ...['--synthetic-per-set', '20', '--no-likelihood', '--threads', '1', '--quiet', '--json'],
    ]);
    expect(fit.code).toBe(0);
    const primary = JSON.parse(fit.out).primary as string;
    const argv = [
      ...['--model', dir, '--in', spec.heldout, '--other', spec.out, '--out', spec.train],
      ...['--limit', '20', '--per-set', '12', '--threads', '1', '--quiet'],
      ...['--likelihood', '--likelihood-limit', '6', '--lik-solver', 'euler', '--lik-steps', '2'],
    ];
    const j = await run(oodBenchCommand, [...argv, '--json']);
    expect(j.code).toBe(0);
    const r = JSON.parse(j.out);
    expect(r.in.n).toBe(20);
    const names = r.sets.map((s: { name: string }) => s.name);
    for (const s of ['uniform_noise', 'constant_black', 'inverted', 'rot90'])
      expect(names).toContain(s);
    expect(names).toContain(spec.out);
    expect(names).toContain(spec.train);
    // The validation generators are marked as tuned on, the others are not.
    const tuned = r.sets
      .filter((s: { tuned: boolean }) => s.tuned)
      .map((s: { name: string }) => s.name);
    expect(tuned.sort()).toEqual(['constant_mid', 'low_contrast', 'smooth_noise', 'uniform_noise']);
    for (const k of ['msp', 'mahalanobis', 'mahalanobis_deep', 'likelihood', 'complexity_ratio'])
      for (const s of names) {
        const c = r.scores[k][s];
        expect(c.auroc).toBeGreaterThanOrEqual(0);
        expect(c.auroc).toBeLessThanOrEqual(1);
        expect(c.fpr95).toBeGreaterThanOrEqual(0);
      }
    // Bits/dim scores have no stored threshold here (fitted without them); the others do.
    expect(r.scores.likelihood.uniform_noise.flagged).toBeNull();
    expect(r.scores.mahalanobis.uniform_noise.flagged).toBeGreaterThanOrEqual(0);
    expect(r.cost.likelihood.images).toBe(6 * (1 + names.length));
    expect(r.cost.likelihood.seconds_per_image).toBeGreaterThan(0);
    // Worst case over the held-out sets is the minimum of their AUROCs.
    const held = r.sets
      .filter((s: { tuned: boolean }) => !s.tuned)
      .map((s: { name: string }) => s.name);
    const m = r.summary.mahalanobis.held_out;
    expect(m.worst_auroc).toBe(Math.min(...held.map((s: string) => r.scores.mahalanobis[s].auroc)));
    expect(r.primary.score).toBe(primary);
    const t = await run(oodBenchCommand, argv);
    expect(t.out).toMatch(/^AUROC\s+unif\*\s+smooth\*/m);
    expect(t.out).toMatch(/^% flagged/m);
    expect(t.out).toMatch(new RegExp(`served primary: ${primary}`));
    await expect(
      oodBenchCommand(['--model', dir, '--in', spec.heldout, '--synthetic', 'nope']),
    ).rejects.toThrow(/--synthetic nope/);
    await expect(
      oodBenchCommand(['--model', dir, '--in', spec.out, '--out', spec.out]),
    ).rejects.toThrow(/must not be the --in set/);
  });
});
