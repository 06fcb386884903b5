import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeIdxPair } from '../prg/data';
import { createTinyModel } from '../prg/testing/tiny-model';
import { tinyDataset } from '../prg/testing/tiny-data';
import { main } from './main';
import { runCommand } from './testing/run-command';

let root: string;
let spec: string;

const run = (args: string[]) => runCommand(main, args);

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-cli-'));
  await createTinyModel(join(root, 'm'), { classes: 2, featurePool: 4 });
  const ds = tinyDataset({ n: 8, classes: 2 });
  await writeIdxPair(ds, join(root, 'i.idx'), join(root, 'l.idx'));
  spec = `idx:${join(root, 'i.idx')},${join(root, 'l.idx')}`;
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

describe('prg CLI', () => {
  it('usage errors exit 2 with a message naming the flag', async () => {
    let r = await run(['eval', '--model', 'x', '--data', 'y', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--bogus/);
    r = await run(['finetune', '--model', 'x', '--data', 'y', '--out', 'z', '--epochs', '0']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--epochs=0: must be >= 1/);
    r = await run(['finetune', '--model', 'x', '--data', 'y', '--out', 'z', '--hflip', '2']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--hflip=2: must be <= 1/);
    r = await run(['pretrain', '--data', 'mnist:train']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--out is required/);
    r = await run(['eval', '--model', 'x', '--data', 'y', '--solver', 'heun']);
    expect(r.code).toBe(2);
    r = await run(['frobnicate']);
    expect(r.code).toBe(2);
  });

  it('recipe: list, usage errors, and a run directory with a state needs --resume', async () => {
    let r = await run(['recipe', 'list']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^mnist v1 .*\nfashion-mnist v1 /);
    r = await run(['recipe', 'run', 'cifar']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown recipe "cifar"/);
    r = await run(['recipe', 'go', 'mnist']);
    expect(r.code).toBe(2);
    r = await run(['recipe', 'run', 'mnist', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--bogus/);
    const dir = join(root, 'recipe-run');
    await fs.mkdir(dir);
    await fs.writeFile(join(dir, 'state.json'), '{"recipe":"mnist-smoke","version":1,"stages":{}}');
    r = await run(['recipe', 'run', 'mnist', '--smoke', '--dir', dir, '--quiet']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/state\.json exists: pass resume \(--resume\)/);
  });

  it('recipe: ablations are listed and run like recipes; export-flow needs a finished pretrain, export-model a complete run', async () => {
    let r = await run(['recipe', 'list']);
    expect(r.out).toMatch(/\nablate-lambda-mnist v1 .*Budget per seed: first 6000 training images/);
    expect(r.out).toMatch(/\nablate-supervised-fashion-mnist v1 /);
    const dir = join(root, 'ablate-run');
    await fs.mkdir(dir);
    await fs.writeFile(
      join(dir, 'state.json'),
      '{"recipe":"ablate-lambda-mnist-smoke","version":1,"stages":{}}',
    );
    r = await run(['recipe', 'run', 'ablate-lambda-mnist', '--smoke', '--dir', dir, '--quiet']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/state\.json exists: pass resume \(--resume\)/);
    r = await run(['recipe', 'export-flow', 'mnist', '--dir', join(root, 'nothing')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/has no state\.json: run the recipe mnist first/);
    r = await run(['recipe', 'export-flow', 'cifar']);
    expect(r.code).toBe(2);
    r = await run(['recipe', 'export-model', 'mnist', '--dir', join(root, 'nothing')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/has no results\.json: run the recipe mnist first/);
    r = await run(['recipe', 'export-model', 'cifar']);
    expect(r.code).toBe(2);
  });

  it('eval --json prints one object with accuracy and n; features writes .npy files', async () => {
    const r = await run([
      'eval',
      '--model',
      join(root, 'm'),
      '--data',
      spec,
      '--json',
      '--threads',
      '1',
    ]);
    expect(r.code).toBe(0);
    const rec = JSON.parse(r.out) as { accuracy: number; n: number };
    expect(rec.n).toBe(8);
    expect(rec.accuracy).toBeGreaterThanOrEqual(0);
    expect(rec.accuracy).toBeLessThanOrEqual(1);
    const out = join(root, 'f.npy');
    const f = await run([
      'features',
      '--model',
      join(root, 'm'),
      '--data',
      spec,
      '--out',
      out,
      '--pool',
      '2',
    ]);
    expect(f.code).toBe(0);
    const bytes = await fs.readFile(out);
    expect(bytes.subarray(1, 6).toString()).toBe('NUMPY');
    expect(bytes.toString('latin1', 10, 80)).toMatch(/'shape': \(8, 4\)/);
    expect((await fs.stat(join(root, 'f.labels.npy'))).size).toBeGreaterThan(8 * 4);
    const missing = await run(['eval', '--model', join(root, 'nope'), '--data', spec]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/manifest\.json/);
  });

  it('eval --record stores the measured accuracy and its command in the manifest', async () => {
    const dir = join(root, 'rec');
    await createTinyModel(dir, { classes: 2, featurePool: 4 });
    const r = await run(['eval', '--model', dir, '--data', spec, '--json', '--record']);
    expect(r.code).toBe(0);
    const measured = (JSON.parse(r.out) as { accuracy: number }).accuracy;
    const m = JSON.parse(await fs.readFile(join(dir, 'manifest.json'), 'utf8')) as {
      metrics: Record<string, { value: number; command: string; n: number; data: string }>;
    };
    const rec = m.metrics[`accuracy:${spec}`];
    expect(rec.value).toBe(measured);
    expect(rec.n).toBe(8);
    expect(rec.data).toBe(spec);
    expect(rec.command).toMatch(/^npx prg .*--record/);
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('finetune runs end to end and writes a log', async () => {
    const log = join(root, 'ft.jsonl');
    const r = await run([
      'finetune',
      '--model',
      join(root, 'm'),
      '--data',
      spec,
      '--out',
      join(root, 'ft'),
      '--epochs',
      '1',
      '--batch-size',
      '4',
      '--steps',
      '1',
      '--hflip',
      '0.5',
      '--crop-padding',
      '2',
      '--log',
      log,
      '--quiet',
      '--json',
      '--threads',
      '1',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).steps).toBe(2);
    const manifest = JSON.parse(await fs.readFile(join(root, 'ft', 'manifest.json'), 'utf8'));
    expect(manifest.provenance.augment).toEqual({ hflip: 0.5, cropPadding: 2 });
    const lines = (await fs.readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l: { event: string }) => l.event)).toEqual([
      'start',
      'step',
      'step',
      'epoch',
      'done',
    ]);
  });

  it('pretrain writes a model that finetune and eval accept; a second pretrain needs --resume', async () => {
    const out = join(root, 'pre');
    const args = [
      'pretrain',
      '--data',
      spec,
      '--out',
      out,
      '--batch-size',
      '4',
      '--epochs',
      '1',
      '--max-steps',
      '2',
      '--steps',
      '2',
      '--t-star',
      '0.5',
      '--pool',
      '2',
      '--hidden',
      '8',
      '--quiet',
      '--json',
      '--threads',
      '1',
    ];
    const r = await run(args);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).steps).toBe(2);
    const again = await run([...args, '--overwrite']);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/--resume/);
    const more = await run([
      ...args,
      '--overwrite',
      '--resume',
      '--max-steps',
      '3',
      '--epochs',
      '2',
    ]);
    expect(more.code).toBe(0);
    expect(JSON.parse(more.out)).toMatchObject({ steps: 3, resumedFromStep: 2 });
    const ev = await run(['eval', '--model', out, '--data', spec, '--json', '--threads', '1']);
    expect(JSON.parse(ev.out).n).toBe(8);
  });
});
