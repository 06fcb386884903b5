/**
 * `prg import onnx` on user graphs with other names, the upstream time convention, a t scale and
 * a class-label input. The graphs are the tiny SiT fixture (test/fixtures/import) in upstream form
 * — imported, then flipped back with flipTimeConvention, renamed and fed t × 1000 — so the wrapped
 * graph can be checked against the reference outputs the upstream SiT code made (tolerance 1e-4,
 * as in conformance.spec.ts: float32 on both sides, summation order differs; the extra t / 1000 ·
 * 1000 and 1 − (1 − t) round t by at most a few ulps).
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../engine/onnx/builder';
import { encodeModel } from '../../engine/onnx/proto';
import { Graph, tensor } from '../../engine/onnx/types';
import { ImportProvenance } from '../manifest';
import { loadPrgModel } from '../inference';
import { readModelDir } from '../model-dir/io';
import { writeImportedModel } from './model';
import { OnnxContract, importOnnx } from './onnx';
import { layerNormNet, sitUpstream, userGraph } from './testing/user-graphs';
import { readReference, sha256File, verifyVelocity } from './verify';

const FIX = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'import');
const TOL = 1e-4;
let root: string;

async function writeUser(name: string, g: Graph): Promise<string> {
  const p = join(root, name);
  await fs.writeFile(p, encodeModel(g));
  return p;
}

const SIT_CONTRACT: OnnxContract = {
  input: 'sample',
  time: 'timestep',
  output: 'out',
  convention: 'data-at-1',
  tScale: 1000,
};

const modelOptions = (out: string, verify?: string) => ({
  out: join(root, out),
  name: out,
  classes: ['a', 'b'],
  head: { kind: 'pooled' as const, hidden: 16, featurePool: 4 },
  solver: { name: 'euler' as const, steps: 2, tStar: 0.5 },
  ...(verify ? { verify: { file: verify, tolerance: TOL } } : {}),
});

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'prg-import-onnx-'));
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

describe('prg import onnx', () => {
  it('wraps a data-at-1 graph fed t × 1000 into our contract, matching the upstream reference', async () => {
    const file = await writeUser('sit-user.onnx', userGraph(await sitUpstream(false), 1000));
    const imp = await importOnnx(file, { contract: SIT_CONTRACT, interpolant: 'icfm' });
    expect(imp.velocity.inputs.map((i) => i.name)).toEqual(['x', 't']);
    expect(imp.untrainableOps).toEqual([]);
    const ref = await readReference(join(FIX, 'sit-tiny.torch1.ref.safetensors'));
    const r = await verifyVelocity(imp.velocity, ref);
    console.log(`onnx import of SiT tiny: max |Δv| ${r.maxAbsDiff.toExponential(2)}`);
    expect(r.maxAbsRef).toBeGreaterThan(0.1);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(TOL);

    const ref1 = join(FIX, 'sit-tiny.torch1.ref.safetensors');
    const res = await writeImportedModel(imp, modelOptions('sit-onnx', ref1));
    const dir = await readModelDir(res.dir);
    const m = dir.manifest;
    expect(m.architecture.velocity.kind).toBe('onnx');
    expect(m.architecture.velocity.untrainableOps).toBeUndefined();
    const prov = m.provenance.import as ImportProvenance;
    expect(prov.family).toBe('onnx');
    expect(prov.source.sha256).toBe(await sha256File(file));
    expect(prov.source.format).toBe('onnx');
    expect(prov.contract).toMatchObject(SIT_CONTRACT);
    expect(prov.convention.transform).toBe('v(x, t) = -v_upstream(x, 1000 * (1 - t))');
    expect(prov.verify!.maxAbsDiff).toBeLessThanOrEqual(TOL);
    const model = await loadPrgModel(res.dir, { threads: 1 });
    try {
      const x = new Float32Array(3 * 4 * 8 * 8).map((_, i) => Math.cos(i));
      const c = await model.classify({ data: x, n: 3 });
      expect(c.probabilities.length).toBe(6);
      expect(c.probabilities.every(Number.isFinite)).toBe(true);
      await expect(model.features({ data: x, n: 3 }, { classLabel: 0 })).rejects.toThrow(
        /unconditional/,
      );
    } finally {
      await model.release();
    }
    // The parameters keep their names, so fine-tuning sees them (pos_embed included: ONNX
    // carries no requires_grad).
    expect(m.architecture.velocity.params).toBeGreaterThan(10_000);
  });

  it('the wrong convention misses the reference and writes nothing', async () => {
    const file = await writeUser('sit-user2.onnx', userGraph(await sitUpstream(false), 1000));
    const imp = await importOnnx(file, {
      contract: { ...SIT_CONTRACT, convention: 'data-at-0' },
      interpolant: 'icfm',
    });
    const ref1 = join(FIX, 'sit-tiny.torch1.ref.safetensors');
    await expect(writeImportedModel(imp, modelOptions('wrong', ref1))).rejects.toThrow(
      /exceeds the tolerance/,
    );
    await expect(fs.stat(join(root, 'wrong'))).rejects.toThrow();
  });

  it('a class-label input becomes y; the manifest records the labels', async () => {
    const file = await writeUser('sit-cond.onnx', userGraph(await sitUpstream(true), 1));
    const labels = { classes: 10, nullClass: 10 };
    const imp = await importOnnx(file, {
      contract: { ...SIT_CONTRACT, tScale: 1, label: 'class_labels' },
      labels,
      interpolant: 'icfm',
    });
    expect(imp.velocity.inputs.map((i) => `${i.name}:${i.dtype}`)).toEqual([
      'x:float32',
      't:float32',
      'y:int64',
    ]);
    const refCond = join(FIX, 'sit-tiny.torch1.ref-cond.safetensors');
    const res = await writeImportedModel(imp, modelOptions('sit-onnx-cond', refCond));
    expect(res.manifest.architecture.velocity.labels).toEqual(labels);
    expect((res.manifest.provenance.import as ImportProvenance).convention.transform).toBe(
      'v(x, t) = -v_upstream(x, 1 - t)',
    );
    expect(res.verify!.maxAbsDiff).toBeLessThanOrEqual(TOL);
    // Served: the null class by default, another label gives other features.
    const model = await loadPrgModel(res.dir, { threads: 1 });
    try {
      const batch = { data: new Float32Array(2 * 4 * 8 * 8).map((_, i) => Math.sin(i)), n: 2 };
      const dflt = await model.features(batch);
      expect(dflt.shape).toEqual([2, 4 * 4 * 4]); // pooled to 4×4 (the manifest's featurePool)
      expect((await model.features(batch, { classLabel: 10 })).data).toEqual(dflt.data);
      expect((await model.features(batch, { classLabel: 3 })).data).not.toEqual(dflt.data);
      await expect(model.features(batch, { classLabel: 11 })).rejects.toThrow(
        /classLabel must be an integer in \[0, 9\] or 10/,
      );
      const c = await model.classify(batch, { classLabel: 3 });
      expect(c.probabilities.every(Number.isFinite)).toBe(true);
    } finally {
      await model.release();
    }
    await expect(
      importOnnx(file, {
        contract: { ...SIT_CONTRACT, tScale: 1, label: 'class_labels' },
        interpolant: 'icfm',
      }),
    ).rejects.toThrow(/--num-classes/);
  });

  it('names what is wrong with the contract', async () => {
    const file = await writeUser('sit-user3.onnx', userGraph(await sitUpstream(false), 1000));
    const go = (c: Partial<OnnxContract>) =>
      importOnnx(file, { contract: { ...SIT_CONTRACT, ...c }, interpolant: 'icfm' });
    await expect(go({ input: 'image' })).rejects.toThrow(
      /no input "image".*sample float32\[N,4,8,8\], timestep float32\[N\]/,
    );
    await expect(go({ output: 'velocity' })).rejects.toThrow(/no output "velocity".*out/);
    await expect(go({ input: 'timestep', time: 'sample' })).rejects.toThrow(
      /timestep is float32\[N\]; the image must be float32 \[N, C, H, W\]/,
    );
    await expect(go({ tScale: 0 })).rejects.toThrow(/--t-scale 0/);
    await expect(
      importOnnx(join(root, 'missing.onnx'), { contract: SIT_CONTRACT, interpolant: 'icfm' }),
    ).rejects.toThrow(/missing\.onnx/);
  });

  it('a graph with a non-finite output fails the smoke run', async () => {
    const b = new GraphBuilder('nan_net');
    const s = b.input('sample', ['N', 1, 4, 4]);
    const ts = b.input('timestep', ['N']);
    const w = b.param('w.weight', tensor('float32', [1, 1], [1]));
    const tt = b.reshape(ts, [-1, 1, 1, 1]);
    // log of a negative number: NaN everywhere.
    b.output(b.log(b.sub(b.mul(b.add(s, tt), 0), b.add(b.reshape(w, [1, 1, 1, 1]), 1))), 'out');
    const file = await writeUser('nan.onnx', b.build());
    await expect(
      importOnnx(file, {
        contract: { ...SIT_CONTRACT, convention: 'data-at-0', tScale: 1 },
        interpolant: 'icfm',
      }),
    ).rejects.toThrow(/smoke run: the velocity is not finite/);
  });

  it('an op without a gradient rule makes the flow inference-only, named in the manifest', async () => {
    const file = await writeUser('layernorm.onnx', layerNormNet());
    const imp = await importOnnx(file, {
      contract: { ...SIT_CONTRACT, convention: 'data-at-0', tScale: 1 },
      interpolant: 'icfm',
    });
    expect(imp.untrainableOps).toEqual(['LayerNormalization']);
    const res = await writeImportedModel(imp, modelOptions('ln'));
    expect(res.manifest.architecture.velocity.untrainableOps).toEqual(['LayerNormalization']);
    expect((await readModelDir(res.dir)).manifest.architecture.velocity.untrainableOps).toEqual([
      'LayerNormalization',
    ]);
  });
});
