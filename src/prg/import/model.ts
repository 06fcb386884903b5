/**
 * An imported velocity net becomes a normal model directory (manifest + velocity ONNX + a fresh,
 * untrained head), so everything that serves or fine-tunes this project's models takes it as is.
 * `--verify` runs before anything is written: a net that misses its reference is never saved.
 */
import { basename } from 'node:path';
import { opsWithoutRule } from '../../engine/autodiff';
import { paramNamesOf, withParamNames } from '../features';
import { HeadKind, buildHead } from '../heads';
import {
  ImportProvenance,
  MANIFEST_SCHEMA,
  ModelManifest,
  SolverName,
  validateImportProvenance,
} from '../manifest';
import { featureDim } from '../model-dir/graph-check';
import { DEFAULT_FILES, writeModelDir } from '../model-dir/io';
import { provenance } from '../model-dir/provenance';
import { ImportedNet } from './plan';
import { readReference, sha256File, verifyVelocity } from './verify';

/** protobuf cannot encode a message of 2 GiB or more; stay clear of it. */
const MAX_INLINE_BYTES = 2 ** 31 - 2 ** 24;

export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

export interface ImportModelOptions {
  out: string;
  name: string;
  version?: string;
  description?: string;
  classes: string[];
  head: { kind: HeadKind; hidden: number; featurePool: number | null; seed?: number };
  solver: { name: SolverName; steps: number; tStar: number };
  verify?: { file: string; tolerance: number };
  overwrite?: boolean;
}

export interface ImportResult {
  dir: string;
  manifest: ModelManifest;
  verify?: ImportProvenance['verify'];
}

export async function writeImportedModel<C>(
  imp: ImportedNet<C>,
  o: ImportModelOptions,
): Promise<ImportResult> {
  const x = imp.velocity.inputs.find((i) => i.name === 'x');
  if (imp.velocity.inputs.some((i) => i.name === 'y') && !imp.plan.labels)
    throw new Error('a class-conditional graph (input y) needs its label range (plan.labels)');
  // Trainable when every op between the parameters (and x) and v has a VJP rule.
  const untrainableOps = opsWithoutRule(imp.velocity, ['v'], [...paramNamesOf(imp.velocity), 'x']);
  const [channels, height, width] = (x?.shape.slice(1) ?? []) as number[];
  const prov: ImportProvenance = { ...imp.provenance };
  if (o.verify) {
    const r = await verifyVelocity(imp.velocity, await readReference(o.verify.file));
    prov.verify = {
      file: basename(o.verify.file),
      sha256: await sha256File(o.verify.file),
      maxAbsDiff: r.maxAbsDiff,
      tolerance: o.verify.tolerance,
      n: r.n,
    };
    if (!(r.maxAbsDiff <= o.verify.tolerance))
      throw new Error(
        `--verify ${o.verify.file}: max abs difference ${r.maxAbsDiff.toExponential(3)} exceeds ` +
          `the tolerance ${o.verify.tolerance} (max |v| ${r.maxAbsRef.toFixed(4)}); nothing written`,
      );
  }
  validateImportProvenance(prov, `import into ${o.out}`);
  let bytes = 0;
  for (const t of imp.velocity.initializers.values()) bytes += t.data.byteLength;
  if (bytes > MAX_INLINE_BYTES)
    throw new Error(
      `the velocity net has ${(bytes / 2 ** 30).toFixed(2)} GiB of weights, past protobuf's 2 GiB ` +
        'limit; model directories with external data are not written by this version',
    );
  const input = { channels, height, width, normalization: 'minus-one-one' as const };
  const featurePool = o.head.featurePool;
  const inputDim = featureDim({ input, featurePool });
  const head = buildHead({
    kind: o.head.kind,
    inputDim,
    hidden: o.head.hidden,
    classes: o.classes.length,
    seed: o.head.seed ?? 0,
  });
  const manifest: ModelManifest = {
    schema: MANIFEST_SCHEMA,
    name: o.name,
    version: o.version ?? '1',
    description:
      o.description ??
      `Imported ${imp.plan.family} velocity net (${imp.provenance.source.file}); the head is ` +
        'untrained until fine-tuned.',
    createdAt: new Date().toISOString(),
    architecture: {
      velocity: {
        kind: imp.plan.kind,
        params: imp.plan.net.params,
        config: imp.plan.net.config as Record<string, unknown>,
        ...(imp.plan.labels ? { labels: imp.plan.labels } : {}),
        ...(untrainableOps.length ? { untrainableOps } : {}),
      },
      head: {
        kind: o.head.kind,
        hidden: o.head.hidden,
        params: head.params,
        config: { ...head.config },
      },
    },
    interpolant: imp.plan.interpolant,
    solver: o.solver,
    input,
    featurePool,
    classes: o.classes,
    files: { velocity: DEFAULT_FILES.velocity, head: DEFAULT_FILES.head },
    metrics: {},
    provenance: provenance(`imported:${imp.provenance.source.file}`, { import: prov }),
  };
  const dir = await writeModelDir(
    o.out,
    { manifest, velocity: imp.velocity, head: withParamNames(head.graph, head.paramNames) },
    { overwrite: o.overwrite },
  );
  return { dir, manifest, verify: prov.verify };
}
