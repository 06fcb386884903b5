/**
 * Finding the weights inside a checkpoint: a bare state_dict (name → tensor), or a training
 * script's dict holding several (`{model, ema, opt, args}` for SiT, `{net_model, ema_model,
 * sched, optim, step}` for torchcfm). EMA weights are preferred (they are what the authors
 * sample with); DataParallel's `module.` prefix is stripped.
 */
import { StoredTensor, isStoredTensor } from '../../engine/checkpoints';

export interface StateDict {
  tensors: Map<string, StoredTensor>;
  /** Where it came from, e.g. "ema", "(root)", "ema_model (module. stripped)". */
  source: string;
}

function asTensorMap(v: unknown): Map<string, StoredTensor> | undefined {
  if (!(v instanceof Map) || v.size === 0) return undefined;
  const out = new Map<string, StoredTensor>();
  for (const [k, t] of v) {
    if (typeof k !== 'string') return undefined;
    // state_dicts may hold non-tensor extras (e.g. BatchNorm's num_batches_tracked is a tensor;
    // `_metadata` lives in BUILD state): anything else means this is not a state_dict.
    if (!isStoredTensor(t)) return undefined;
    out.set(k, t);
  }
  return out;
}

/**
 * The state_dict of a checkpoint root. `prefer` lists the sub-dict keys tried in order (EMA
 * first); a root that is itself a state_dict is used as is.
 */
export function selectStateDict(root: unknown, prefer: readonly string[], file: string): StateDict {
  let tensors = asTensorMap(root);
  let source = '(root)';
  if (!tensors) {
    if (!(root instanceof Map))
      throw new Error(`${file}: holds neither a state_dict nor a dict of state_dicts`);
    for (const key of prefer) {
      const m = asTensorMap(root.get(key));
      if (m) {
        tensors = m;
        source = key;
        break;
      }
    }
    if (!tensors)
      throw new Error(
        `${file}: no state_dict at the top level or under ${prefer.join(', ')}; ` +
          `top-level keys: ${[...root.keys()].map(String).join(', ')}`,
      );
  }
  const keys = [...tensors.keys()];
  if (keys.length && keys.every((k) => k.startsWith('module.'))) {
    tensors = new Map([...tensors].map(([k, t]) => [k.slice('module.'.length), t]));
    source += ' (module. stripped)';
  }
  return { tensors, source };
}
