/** `prg import onnx` from the command line (the importer itself: src/prg/import/onnx.spec.ts). */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeModel } from '../engine/onnx/proto';
import { readModelDir } from '../prg/model-dir/io';
import { IMPORT_FIXTURES as FIX, sitUpstream, userGraph } from '../prg/import/testing/user-graphs';
import { importCommand } from './import-command';

const TOL = 1e-4;
let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-cli-import-'));
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

async function writeUser(name: string, g: Parameters<typeof encodeModel>[0]): Promise<string> {
  const p = join(root, name);
  await fs.writeFile(p, encodeModel(g));
  return p;
}

describe('prg import onnx (CLI)', () => {
  it('writes a model directory from the declared contract; --convention is required', async () => {
    const file = await writeUser('cli.onnx', userGraph(await sitUpstream(false), 1000));
    const out = join(root, 'cli-model');
    const argv = [
      'onnx',
      '--checkpoint',
      file,
      '--input',
      'sample',
      '--time',
      'timestep',
      '--output',
      'out',
      '--t-scale',
      '1000',
      '--classes',
      'a,b',
      '--pool',
      '4',
      '--hidden',
      '8',
      '--verify',
      join(FIX, 'sit-tiny.torch1.ref.safetensors'),
      '--out',
      out,
      '--json',
    ];
    await expect(importCommand(argv)).rejects.toThrow(/--convention data-at-0\|data-at-1/);
    const write = process.stdout.write;
    let printed = '';
    process.stdout.write = ((s: string) => ((printed += s), true)) as typeof write;
    try {
      expect(await importCommand([...argv, '--convention', 'data-at-1'])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    const summary = JSON.parse(printed) as Record<string, unknown>;
    expect(summary.family).toBe('onnx');
    expect(summary.untrainableOps).toEqual([]);
    expect((summary.verify as { maxAbsDiff: number }).maxAbsDiff).toBeLessThanOrEqual(TOL);
    const m = (await readModelDir(out)).manifest;
    expect(m.architecture.velocity.kind).toBe('onnx');
    expect(m.architecture.head.hidden).toBe(8);
  });
});

describe('prg import sit --class-conditional (CLI)', () => {
  it('keeps the label input and records the label range and the CFG scale', async () => {
    const out = join(root, 'sit-cond');
    const write = process.stdout.write;
    process.stdout.write = (() => true) as typeof write;
    try {
      const argv = ['sit', '--checkpoint', join(FIX, 'sit-tiny.torch1.pt'), '--path', 'linear'];
      const rest = ['--heads', '4', '--classes', 'a,b', '--pool', '4', '--out', out];
      const more = ['--class-conditional', '--cfg-scale', '4'];
      const ref = ['--verify', join(FIX, 'sit-tiny.torch1.ref-cond.safetensors')];
      expect(await importCommand([...argv, ...rest, ...more, ...ref])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    const d = await readModelDir(out);
    expect(d.velocity.inputs.map((i) => i.name)).toEqual(['x', 't', 'y']);
    expect(d.manifest.architecture.velocity.labels).toEqual({
      classes: 10,
      nullClass: 10,
      cfgScale: 4,
    });
  });
});
