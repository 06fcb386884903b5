/** GraphQL queries over models and inference; thin over ModelsService and InferenceService. */
import { UseGuards } from '@nestjs/common';
import { Args, Float, Int, Query, Resolver } from '@nestjs/graphql';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { InferenceService } from '../services/inference.service';
import { ModelSummary, ModelsService } from '../services/models.service';
import { ClassifyPayload, FeaturesPayload, Model } from './models.types';

function toModel(s: ModelSummary): Model {
  return {
    id: s.id,
    name: s.name,
    version: s.version,
    description: s.description,
    isDefault: s.isDefault,
    loaded: s.loaded,
    createdAt: s.createdAt,
    interpolant: s.interpolant,
    input: s.input,
    classes: s.classes,
    solver: s.solver,
    metrics: Object.entries(s.metrics).map(([name, m]) => ({
      name,
      value: m.value,
      data: m.data,
      n: m.n,
      command: m.command,
      measuredAt: m.measuredAt,
    })),
    oodThresholds: Object.entries(s.ood?.scores ?? {}).map(([name, t]) => ({
      name,
      ...t,
      primary: name === s.ood?.primary,
    })),
  };
}

@Resolver(() => Model)
export class ModelsResolver {
  constructor(
    private readonly modelsService: ModelsService,
    private readonly inference: InferenceService,
  ) {}

  @Query(() => [Model], { description: 'Every servable model' })
  models(): Model[] {
    return this.modelsService.list().models.map(toModel);
  }

  @Query(() => Model, { description: '"name@version", or a name for its latest version' })
  async model(@Args('id') id: string): Promise<Model> {
    return toModel(await this.modelsService.get(id));
  }

  @Query(() => ClassifyPayload, { description: 'Classify base64 PNG/JPEG/WebP images' })
  @UseGuards(RateLimitGuard)
  classify(
    @Args('images', { type: () => [String] }) images: string[],
    @Args('model', { nullable: true }) model?: string,
    @Args('topK', { type: () => Int, nullable: true }) topK?: number,
    @Args('steps', { type: () => Int, nullable: true }) steps?: number,
    @Args('solver', { nullable: true }) solver?: string,
  ): Promise<ClassifyPayload> {
    return this.inference.classify(
      model,
      images.map((b) => ({ base64: b })),
      { topK: topK ?? undefined, steps: steps ?? undefined, solver: solver ?? undefined },
    );
  }

  @Query(() => FeaturesPayload, { description: 'x_t features of the reverse process at time t' })
  @UseGuards(RateLimitGuard)
  async features(
    @Args('model') model: string,
    @Args('images', { type: () => [String] }) images: string[],
    @Args('t', { type: () => Float, nullable: true }) t?: number,
    @Args('steps', { type: () => Int, nullable: true }) steps?: number,
    @Args('solver', { nullable: true }) solver?: string,
    @Args('pool', {
      type: () => Int,
      nullable: true,
      description: 'average-pool to n×n; omit for none',
    })
    pool?: number,
  ): Promise<FeaturesPayload> {
    const r = await this.inference.features(
      model,
      images.map((b) => ({ base64: b })),
      {
        t: t ?? undefined,
        steps: steps ?? undefined,
        solver: solver ?? undefined,
        pool: pool ?? null,
      },
    );
    return { model: r.model, t: r.t, shape: r.shape, vectors: r.vectors.map((v) => Array.from(v)) };
  }
}
