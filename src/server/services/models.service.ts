import { Injectable } from '@nestjs/common';
import { ModelManifest } from '../../prg/manifest';
import { ModelEntry, ModelRegistry } from '../repositories/model-registry.repository';

export interface ModelSummary {
  id: string;
  name: string;
  version: string;
  description: string | null;
  isDefault: boolean;
  loaded: boolean;
  loadError: string | null;
  createdAt: string;
  input: ModelManifest['input'];
  classes: string[];
  interpolant: ModelManifest['interpolant'];
  solver: ModelManifest['solver'];
  metrics: ModelManifest['metrics'];
  ood: ModelManifest['ood'] | null;
}

export interface ModelDetail extends ModelSummary {
  manifest: ModelManifest;
}

@Injectable()
export class ModelsService {
  constructor(private readonly registry: ModelRegistry) {}

  list(): { default: string | null; models: ModelSummary[] } {
    return {
      default: this.registry.defaultModelId,
      models: this.registry.list().map((e) => this.summary(e)),
    };
  }

  async get(ref: string): Promise<ModelDetail> {
    const e = await this.registry.resolve(ref);
    return { ...this.summary(e), manifest: e.manifest };
  }

  async rescan(): Promise<{ default: string | null; models: ModelSummary[] }> {
    await this.registry.rescan();
    return this.list();
  }

  private summary(e: ModelEntry): ModelSummary {
    const m = e.manifest;
    return {
      id: e.id,
      name: m.name,
      version: m.version,
      description: m.description ?? null,
      isDefault: e.id === this.registry.defaultModelId,
      loaded: this.registry.isLoaded(e.id),
      loadError: this.registry.loadError(e.id) ?? null,
      createdAt: m.createdAt,
      input: m.input,
      classes: m.classes,
      interpolant: m.interpolant,
      solver: m.solver,
      metrics: m.metrics ?? {},
      ood: m.ood ?? null,
    };
  }
}
