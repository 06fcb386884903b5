/**
 * The import pipeline shared by every family: open the checkpoint, pick its state_dict, let the
 * family plan the net and the key mapping, load the weights (every key accounted for), fold the
 * time convention into the graph, and record where every byte came from.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { StoredTensor, openCheckpoint } from '../../engine/checkpoints';
import { Graph } from '../../engine/onnx/types';
import { withParamNames } from '../features';
import { ClassLabels, ImportProvenance, InterpolantName, VelocityKind } from '../manifest';
import { BuiltNet } from '../nets/unet';
import { CONVENTION_TRANSFORM, UPSTREAM_CONVENTION, flipTimeConvention } from './convention';
import { KeyMap, MappingReport, loadMapped } from './mapping';
import { selectStateDict } from './state-dict';

export interface ImportPlan<C> {
  family: ImportProvenance['family'];
  kind: VelocityKind;
  net: BuiltNet<C>;
  map: KeyMap;
  ignored: Record<string, string>;
  /** Parameters fine-tuning may change (frozen upstream buffers are left out). */
  trainable: string[];
  upstream: Record<string, unknown>;
  interpolant: InterpolantName;
  /** A class-conditional net (input y): its label range and null class. */
  labels?: ClassLabels;
}

export interface ImportedNet<C> {
  plan: ImportPlan<C>;
  /** Velocity graph in this project's convention (x, t → v), weights loaded. */
  velocity: Graph;
  report: MappingReport;
  provenance: ImportProvenance;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function importNet<C>(
  file: string,
  prefer: readonly string[],
  planner: (sd: Map<string, StoredTensor>, root: unknown) => ImportPlan<C>,
  o: { allowUnmapped?: boolean } = {},
): Promise<ImportedNet<C>> {
  const ckpt = await openCheckpoint(file);
  try {
    const sd = selectStateDict(ckpt.root, prefer, file);
    const plan = planner(sd.tensors, ckpt.root);
    const loaded = await loadMapped(
      file,
      plan.net.graph,
      plan.net.paramNames,
      plan.map,
      sd.tensors,
      {
        allowUnmapped: o.allowUnmapped,
        ignored: plan.ignored,
      },
    );
    const velocity = withParamNames(flipTimeConvention(loaded.graph), plan.trainable);
    const mapping: Record<string, string> = {};
    const ignored: Record<string, string> = { ...plan.ignored };
    for (const [ours, src] of plan.map) {
      mapping[ours] = src.key;
      if (src.transform) ignored[`${src.key} → ${ours}`] = src.transform.note;
    }
    for (const k of loaded.report.unmapped) ignored[k] = 'unmapped (--allow-unmapped)';
    const provenance: ImportProvenance = {
      family: plan.family,
      source: {
        file: basename(file),
        sha256: await sha256File(file),
        bytes: (await fs.stat(file)).size,
        format: ckpt.format,
        stateDict: sd.source,
      },
      upstream: plan.upstream,
      mapping,
      ignored,
      convention: { upstream: UPSTREAM_CONVENTION, transform: CONVENTION_TRANSFORM },
    };
    return { plan, velocity, report: loaded.report, provenance };
  } finally {
    await ckpt.close();
  }
}
