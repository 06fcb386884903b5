/**
 * The chart's model seeding (helm/prg-server/files/seed-models.mjs), run as the init container runs
 * it: `node seed-models.mjs <shipped> <volume>`, on temporary directories.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const SCRIPT = path.resolve(
  __dirname,
  '..',
  '..',
  'helm',
  'prg-server',
  'files',
  'seed-models.mjs',
);

let root: string;
let shipped: string;
let volume: string;

async function model(dir: string, name: string, version: string, weights = 'w'): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ name, version }));
  await writeFile(path.join(dir, 'velocity.onnx'), weights);
}
const seed = () => run(process.execPath, [SCRIPT, shipped, volume]);
const listing = async () => (await readdir(volume)).sort();

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'prg-seed-'));
  shipped = path.join(root, 'app-models');
  volume = path.join(root, 'volume');
  await mkdir(volume);
  await model(path.join(shipped, 'prg-mnist'), 'prg-mnist', '4');
  await model(path.join(shipped, 'prg-fashion-mnist'), 'prg-fashion-mnist', '2');
});
afterEach(() => rm(root, { recursive: true, force: true }));

describe('seed-models.mjs', () => {
  it('copies each shipped model to <name>-<version>, and a second run changes nothing', async () => {
    const first = await seed();
    expect(first.stdout).toMatch(/prg-mnist@4 -> /);
    expect(await listing()).toEqual(['prg-fashion-mnist-2', 'prg-mnist-4']);
    const second = await seed();
    expect(second.stdout).toMatch(/prg-mnist@4 already on the volume/);
    expect(await listing()).toEqual(['prg-fashion-mnist-2', 'prg-mnist-4']);
  });

  it('an image with a new version adds it beside the old one and leaves fine-tuned models alone', async () => {
    await seed();
    const fineTuned = path.join(volume, 'prg-mnist-4-ft.ft_1');
    await model(fineTuned, 'prg-mnist', '4-ft.ft_1', 'tuned');
    await rm(path.join(shipped, 'prg-mnist'), { recursive: true });
    await model(path.join(shipped, 'prg-mnist'), 'prg-mnist', '5', 'new');
    await seed();
    expect(await listing()).toEqual([
      'prg-fashion-mnist-2',
      'prg-mnist-4',
      'prg-mnist-4-ft.ft_1',
      'prg-mnist-5',
    ]);
    expect(await readFile(path.join(volume, 'prg-mnist-5', 'velocity.onnx'), 'utf8')).toBe('new');
    expect(await readFile(path.join(fineTuned, 'velocity.onnx'), 'utf8')).toBe('tuned');
  });

  it('a version already on the volume under another directory (an older chart) is not duplicated', async () => {
    await model(path.join(volume, 'prg-mnist'), 'prg-mnist', '4', 'old-layout');
    await seed();
    expect(await listing()).toEqual(['prg-fashion-mnist-2', 'prg-mnist']);
  });

  it('removes a stale half copy left by a killed pod, keeps a fresh one (another pod copying)', async () => {
    const stale = path.join(volume, '.seed-prg-mnist-4-old-pod-1');
    const fresh = path.join(volume, '.seed-prg-mnist-4-other-pod-2');
    await mkdir(stale);
    await mkdir(fresh);
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(stale, hourAgo, hourAgo);
    await seed();
    expect(await listing()).toEqual([
      '.seed-prg-mnist-4-other-pod-2',
      'prg-fashion-mnist-2',
      'prg-mnist-4',
    ]);
  });

  it('refuses a manifest whose name could escape the volume', async () => {
    await model(path.join(shipped, 'evil'), '../evil', '1');
    await expect(seed()).rejects.toMatchObject({ stderr: expect.stringMatching(/unsafe id/) });
  });
});
