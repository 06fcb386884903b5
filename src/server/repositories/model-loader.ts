/**
 * How a model directory becomes a PrgModelApi. The registry depends on this token only, so tests
 * and tools can substitute a loader; the default is src/prg/inference.ts.
 */
import { PrgModelApi } from '../../prg/inference-api';
import { Device } from '../config/config';

export interface LoadOptions {
  device: Device;
  threads: number;
}

export type ModelLoader = (dir: string, opts: LoadOptions) => Promise<PrgModelApi>;

export const MODEL_LOADER = Symbol('MODEL_LOADER');

export const defaultModelLoader: ModelLoader = async (dir, opts) => {
  // TODO(inference lands): static import. A non-literal specifier keeps the build independent of
  // src/prg/inference.ts until it is committed.
  const specifier = '../../prg/inference';
  const mod = (await import(specifier)) as {
    loadPrgModel: (d: string, o: LoadOptions) => Promise<PrgModelApi>;
  };
  return mod.loadPrgModel(dir, opts);
};
