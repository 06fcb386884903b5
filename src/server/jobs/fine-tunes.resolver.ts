/** GraphQL over fine-tune jobs; thin over FineTunesService (same validation and errors as REST). */
import { UseGuards } from '@nestjs/common';
import { Args, Context, ID, Mutation, Query, Resolver, Subscription } from '@nestjs/graphql';
import type { Request } from 'express';
import { map } from 'rxjs';
import { ApiKeyGuard } from '../common/api-key.guard';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { apiKeyOf } from '../common/request';
import { FineTunesService } from './fine-tunes.service';
import { toAsyncIterator } from './async-iterator';
import { CreateFineTuneInput } from './fine-tune.dto';
import { eventToGraphql, FineTuneEvent, FineTuneJob, toGraphql } from './fine-tunes.types.graphql';

@Resolver(() => FineTuneJob)
@UseGuards(ApiKeyGuard)
export class FineTunesResolver {
  constructor(private readonly service: FineTunesService) {}

  @Query(() => [FineTuneJob], { description: 'Fine-tune jobs, newest first' })
  async fineTunes(): Promise<FineTuneJob[]> {
    return (await this.service.list()).map(toGraphql);
  }

  @Query(() => FineTuneJob)
  async fineTune(@Args('id', { type: () => ID }) id: string): Promise<FineTuneJob> {
    return toGraphql(await this.service.get(id));
  }

  @Mutation(() => FineTuneJob, {
    description: 'Queue a fine-tune of a model on an uploaded dataset',
  })
  @UseGuards(RateLimitGuard)
  async createFineTune(
    @Args('input') input: CreateFineTuneInput,
    @Context() ctx: { req: Request },
  ): Promise<FineTuneJob> {
    return toGraphql(await this.service.create(input, apiKeyOf(ctx.req)));
  }

  @Subscription(() => FineTuneEvent, {
    description:
      "A job's events (graphql-ws): a snapshot, then status changes and progress per step/epoch, ending after the job ends",
    resolve: (e: FineTuneEvent) => e,
  })
  async fineTuneEvents(
    @Args('id', { type: () => ID }) id: string,
  ): Promise<AsyncIterableIterator<FineTuneEvent>> {
    return toAsyncIterator((await this.service.events(id)).pipe(map(eventToGraphql)));
  }

  @Mutation(() => FineTuneJob, { description: 'Cancel a queued or running fine-tune' })
  async cancelFineTune(@Args('id', { type: () => ID }) id: string): Promise<FineTuneJob> {
    return toGraphql(await this.service.cancel(id));
  }
}
