import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeIdxPair } from '../prg/data';
import { tinyDataset } from '../prg/testing/tiny-data';
import { createTinyModel } from '../prg/testing/tiny-model';
import { main } from './main';
import { runCommand } from './testing/run-command';

let root: string;
let spec: string;

const run = (args: string[]) => runCommand(main, args);

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-gen-cli-'));
  await createTinyModel(join(root, 'm'), { classes: 2 });
  await writeIdxPair(tinyDataset({ n: 6, classes: 2 }), join(root, 'i.idx'), join(root, 'l.idx'));
  spec = `idx:${join(root, 'i.idx')},${join(root, 'l.idx')}`;
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

describe('prg sample / noise-stats', () => {
  it('sample writes a PNG grid and the raw .npy; the same seed writes the same bytes', async () => {
    const png = join(root, 'g.png');
    const npyFile = join(root, 'g.npy');
    const args = ['sample', '--model', join(root, 'm'), '--n', '5', '--steps', '2', '--seed', '4'];
    const r = await run([...args, '--out', png, '--npy', npyFile, '--threads', '1']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ shape: [5, 1, 8, 8], n: 5, steps: 2, seed: 4 });
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([3 * 8 + 2, 2 * 8 + 1]);
    // 5 × 64 float32 values after the .npy header.
    expect((await fs.stat(npyFile)).size).toBeGreaterThan(5 * 64 * 4);
    const again = join(root, 'g2.png');
    expect((await run([...args, '--out', again, '--threads', '1'])).code).toBe(0);
    expect(await fs.readFile(again)).toEqual(await fs.readFile(png));
  });

  it('sample: a class for an unconditional model fails naming it; bad flags are usage errors', async () => {
    const r = await run([
      'sample',
      '--model',
      join(root, 'm'),
      '--class',
      '1',
      '--out',
      join(root, 'x.png'),
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/the model is unconditional/);
    expect(
      (await run(['sample', '--model', join(root, 'm'), '--out', 'x.png', '--solver', 'heun']))
        .code,
    ).toBe(2);
    expect((await run(['sample', '--out', 'x.png'])).code).toBe(2);
  });

  it('noise-stats --json reports x_1 against a N(0, I) sample of the same size', async () => {
    const r = await run([
      'noise-stats',
      '--model',
      join(root, 'm'),
      '--data',
      spec,
      '--steps',
      '2',
      '--json',
      '--threads',
      '1',
    ]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out);
    expect(s).toMatchObject({
      n: 6,
      dim: 64,
      steps: 2,
      solver: 'euler',
      reference: { n: 6, dim: 64 },
    });
    expect(typeof s.ks).toBe('number');
  });
});
