import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { writeIdxPair } from '../prg/data';
import { readModelDir } from '../prg/model-dir/io';
import { tinyDataset } from '../prg/testing/tiny-data';
import { createTinyModel } from '../prg/testing/tiny-model';
import { UsageError } from './args';
import { oodEvalCommand, oodFitCommand } from './ood-eval';

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
async function run(cmd: (argv: string[]) => Promise<number>, argv: string[]) {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    chunks.push(String(s));
    return true;
  });
  try {
    const code = await cmd(argv);
    return { code, out: chunks.join('') };
  } finally {
    spy.mockRestore();
  }
}

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
