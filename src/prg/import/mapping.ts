/**
 * Loading a state_dict into one of this project's graphs through a key mapping, and reporting
 * every key that does not fit, by name: keys our net needs that the file lacks (missing), file
 * keys nothing reads (unmapped), and keys whose shape differs (mis-shaped). Nothing is loaded
 * unless all of them are accounted for.
 */
import { StoredTensor, numelOf } from '../../engine/checkpoints';
import { Graph, Tensor } from '../../engine/onnx/types';

/** How one of our parameters is read from the checkpoint. */
export interface KeySource {
  key: string;
  /** Checkpoint shape → our values, when it is not a plain (squeezed) reshape. */
  transform?: { expect: number[]; apply(values: Float32Array): Float32Array; note: string };
}

export type KeyMap = Map<string, KeySource>;

export interface MappingReport {
  mapped: number;
  missing: string[];
  unmapped: string[];
  misshaped: string[];
  ignored: Record<string, string>;
}

export class KeyMappingError extends Error {
  constructor(
    readonly file: string,
    readonly report: MappingReport,
  ) {
    const parts: string[] = [];
    if (report.missing.length) parts.push(`missing: ${report.missing.join(', ')}`);
    if (report.misshaped.length) parts.push(`mis-shaped: ${report.misshaped.join('; ')}`);
    if (report.unmapped.length)
      parts.push(`unmapped (pass --allow-unmapped to ignore): ${report.unmapped.join(', ')}`);
    super(`${file}: the checkpoint does not fit the declared architecture; ${parts.join('; ')}`);
    this.name = 'KeyMappingError';
  }
}

const squeeze = (s: readonly number[]) => s.filter((d) => d !== 1);

/** Same values in the same order: equal shapes up to size-1 axes (e.g. Conv1d [o,i,1] → [o,i,1,1]). */
function reshapeCompatible(a: readonly number[], b: readonly number[]): boolean {
  return squeeze(a).join() === squeeze(b).join();
}

export function checkMapping(
  graph: Graph,
  params: readonly string[],
  map: KeyMap,
  sd: Map<string, StoredTensor>,
  ignored: Record<string, string> = {},
): MappingReport {
  const missing: string[] = [];
  const misshaped: string[] = [];
  const used = new Set<string>(Object.keys(ignored));
  for (const name of params) {
    const src = map.get(name);
    const ours = graph.initializers.get(name);
    if (!ours) throw new Error(`mapping: ${name} is not an initializer of ${graph.name}`);
    if (!src) {
      missing.push(`${name} (no checkpoint key maps to it)`);
      continue;
    }
    used.add(src.key);
    const t = sd.get(src.key);
    if (!t) {
      missing.push(src.key);
      continue;
    }
    const want = src.transform?.expect ?? ours.dims;
    const fits = src.transform
      ? t.shape.join() === want.join()
      : reshapeCompatible(t.shape, ours.dims) && numelOf(t.shape) === numelOf(ours.dims);
    if (!fits) misshaped.push(`${src.key} is [${t.shape}], expected [${want}] for ${name}`);
  }
  const unmapped = [...sd.keys()].filter((k) => !used.has(k));
  return { mapped: params.length - missing.length, missing, unmapped, misshaped, ignored };
}

/**
 * Replace the graph's parameters by the checkpoint's values (read one tensor at a time).
 * Throws KeyMappingError listing every problem unless the mapping is complete.
 */
export async function loadMapped(
  file: string,
  graph: Graph,
  params: readonly string[],
  map: KeyMap,
  sd: Map<string, StoredTensor>,
  o: { allowUnmapped?: boolean; ignored?: Record<string, string> } = {},
): Promise<{ graph: Graph; report: MappingReport }> {
  const report = checkMapping(graph, params, map, sd, o.ignored);
  if (
    report.missing.length ||
    report.misshaped.length ||
    (report.unmapped.length && !o.allowUnmapped)
  )
    throw new KeyMappingError(file, report);
  const initializers = new Map(graph.initializers);
  for (const name of params) {
    const src = map.get(name) as KeySource;
    const ours = graph.initializers.get(name) as Tensor;
    let values = await (sd.get(src.key) as StoredTensor).toFloat32();
    if (src.transform) values = src.transform.apply(values);
    if (values.length !== numelOf(ours.dims))
      throw new Error(`mapping ${src.key} → ${name}: ${values.length} values for [${ours.dims}]`);
    initializers.set(name, { dtype: 'float32', dims: ours.dims, data: values });
  }
  // Nets planned with placeholder parameters must come out fully loaded.
  for (const [name, t] of initializers)
    if (t.data.length !== numelOf(t.dims))
      throw new Error(`mapping: ${name} [${t.dims}] was not loaded from ${file}`);
  return { graph: { ...graph, initializers }, report };
}

/** Rows r of a [rows, cols] matrix (or a vector) for which keep(r) holds, in order. */
export function selectRows(
  values: Float32Array,
  rows: number,
  keep: (r: number) => boolean,
): Float32Array {
  const cols = values.length / rows;
  const out: number[] = [];
  for (let r = 0; r < rows; r++)
    if (keep(r)) for (let c = 0; c < cols; c++) out.push(values[r * cols + c]);
  return Float32Array.from(out);
}
