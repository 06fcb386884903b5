/**
 * Which model answers a request that names none. DEFAULT_MODEL ("name" = its latest version, or
 * "name@version") when set; otherwise the repository's shipped default `prg-mnist` when present
 * (./models ships more than one model, and a shipped model may itself be fine-tuned from an
 * earlier version, so no rule on the manifests alone picks it); otherwise the first base model
 * (no provenance.parent) in id order, else the first model.
 */
import type { ModelCatalog } from './model-catalog';

/** The model `npm start` serves by default from the repository's ./models. */
export const SHIPPED_DEFAULT_MODEL = 'prg-mnist';

export function pickDefaultModel(
  catalog: Pick<ModelCatalog, 'find' | 'list'>,
  configured: string | null,
): string | null {
  if (configured) return catalog.find(configured)?.id ?? null;
  const shipped = catalog.find(SHIPPED_DEFAULT_MODEL);
  if (shipped) return shipped.id;
  const all = catalog.list();
  return (all.find((e) => !e.manifest.provenance?.parent) ?? all[0])?.id ?? null;
}
