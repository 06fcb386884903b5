/**
 * GraphQL queries over models and inference: thin over the ML boundary, with the same argument
 * classes (and so the same validation and error codes) as REST.
 */
import { UseGuards } from '@nestjs/common';
import { Args, Parent, Query, ResolveField, Resolver } from '@nestjs/graphql';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { imageInputs } from '../ml/image-input';
import { MlService } from '../ml/ml.service';
import { ClassifyArgs, FeaturesQueryArgs, SampleQueryArgs } from '../schemas/inference-requests';
import {
  ClassifyResponse,
  FeaturesResponse,
  SamplesResponse,
} from '../schemas/inference-responses';
import { Model, ModelMetric, OodThreshold } from '../schemas/model.schema';

@Resolver(() => Model)
export class ModelsResolver {
  constructor(private readonly ml: MlService) {}

  @Query(() => [Model], { description: 'Every servable model' })
  models(): Model[] {
    return this.ml.models().models;
  }

  @Query(() => Model, { description: '"name@version", or a name for its latest version' })
  model(@Args('id') id: string): Promise<Model> {
    return this.ml.model(id);
  }

  @Query(() => ClassifyResponse, { description: 'Classify base64 PNG/JPEG/WebP images' })
  @UseGuards(RateLimitGuard)
  classify(@Args() args: ClassifyArgs): Promise<ClassifyResponse> {
    return this.ml.classify(args, imageInputs(undefined, args.images));
  }

  @Query(() => FeaturesResponse, { description: 'x_t features of the reverse process at time t' })
  @UseGuards(RateLimitGuard)
  features(@Args() { model, ...args }: FeaturesQueryArgs): Promise<FeaturesResponse> {
    return this.ml.features(
      model,
      { ...args, format: 'json' },
      imageInputs(undefined, args.images),
    );
  }

  @Query(() => SamplesResponse, {
    description: 'Images generated from seeded noise by the forward ODE (t = 1 → 0), base64 PNGs',
  })
  @UseGuards(RateLimitGuard)
  async samples(@Args() { model, ...args }: SampleQueryArgs): Promise<SamplesResponse> {
    const r = await this.ml.samples(model, { ...args, format: 'images' });
    if (r.kind !== 'images') throw new Error('samples: expected images');
    return r.body;
  }

  @ResolveField(() => [ModelMetric])
  metrics(@Parent() m: Model): ModelMetric[] {
    return Object.entries(m.metrics).map(([name, r]) => ({
      name,
      value: r.value,
      data: r.data,
      n: r.n,
      command: r.command,
      measuredAt: r.measuredAt,
    }));
  }

  @ResolveField(() => [OodThreshold])
  oodThresholds(@Parent() m: Model): OodThreshold[] {
    return Object.entries(m.ood?.scores ?? {}).map(([name, t]) => ({
      name,
      ...t,
      primary: name === m.ood?.primary,
    }));
  }
}
