/**
 * An imported velocity net becomes a normal model directory (manifest + velocity ONNX + a fresh,
 * untrained head), so everything that serves or fine-tunes this project's models takes it as is.
 * `--verify` runs before anything is written: a net that misses its reference is never saved.
 */
import { basename } from 'node:path';
import { opsWithoutRule } from '../../engine/autodiff';
import { paramNamesOf } from '../features';
import { HeadKind } from '../heads';
import { ImportProvenance, ModelManifest, SolverName, validateImportProvenance } from '../manifest';
import { writeModelWithFreshHead } from '../model-dir/fresh-head';
import { readManifest } from '../model-dir/io';
import { provenance } from '../model-dir/provenance';
import { ImportedNet } from './plan';
import { readReference, sha256File, verifyVelocity } from './verify';

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
  /** Velocity nets above this many bytes keep their weights in `velocity.onnx.data` (1 GiB). */
  externalDataAbove?: number;
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
  const dir = await writeModelWithFreshHead(
    o.out,
    {
      name: o.name,
      version: o.version ?? '1',
      description:
        o.description ??
        `Imported ${imp.plan.family} velocity net (${imp.provenance.source.file}); the head is ` +
          'untrained until fine-tuned.',
      velocity: {
        kind: imp.plan.kind,
        params: imp.plan.net.params,
        config: imp.plan.net.config as Record<string, unknown>,
        ...(imp.plan.labels ? { labels: imp.plan.labels } : {}),
        ...(untrainableOps.length ? { untrainableOps } : {}),
      },
      interpolant: imp.plan.interpolant,
      solver: o.solver,
      input: { channels, height, width, normalization: 'minus-one-one' },
      featurePool: o.head.featurePool,
      classes: o.classes,
      provenance: provenance(`imported:${imp.provenance.source.file}`, { import: prov }),
    },
    imp.velocity,
    { kind: o.head.kind, hidden: o.head.hidden, seed: o.head.seed ?? 0 },
    { overwrite: o.overwrite, externalDataAbove: o.externalDataAbove },
  );
  return { dir, manifest: await readManifest(dir), verify: prov.verify };
}
