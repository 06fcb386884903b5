/**
 * `Authorization: Bearer <key>` is accepted wherever `x-api-key` is: guarded REST routes, GraphQL
 * over HTTP, graphql-ws subscriptions (connection params), and the Open Inference Protocol (v2);
 * and it identifies the client for the rate limit exactly as `x-api-key` does.
 */
import { createClient } from 'graphql-ws';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { apiKeyOf } from '../../src/server/common/request';
import { graphqlContext } from '../../src/server/common/graphql-context';
import { createTestApp, TestApp, testPng } from '../../src/server/testing/test-app';

const KEY = 'bearer-test-key-1';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('apiKeyOf', () => {
  const req = (headers: Record<string, string>) =>
    ({ headers }) as unknown as Parameters<typeof apiKeyOf>[0];
  it('reads x-api-key, else a Bearer token (scheme case-insensitive); other schemes are no key', () => {
    expect(apiKeyOf(req({ 'x-api-key': 'a' }))).toBe('a');
    expect(apiKeyOf(req({ authorization: 'Bearer b' }))).toBe('b');
    expect(apiKeyOf(req({ authorization: 'bearer  b ' }))).toBe('b');
    expect(apiKeyOf(req({ 'x-api-key': 'a', authorization: 'Bearer b' }))).toBe('a');
    expect(apiKeyOf(req({ authorization: 'Basic YTpi' }))).toBeUndefined();
    expect(apiKeyOf(req({ authorization: 'Bearer' }))).toBeUndefined();
    expect(apiKeyOf(req({ authorization: 'Bearer a b' }))).toBeUndefined();
    expect(apiKeyOf(req({}))).toBeUndefined();
  });

  it('graphql-ws: an Authorization connection param becomes the header', () => {
    const ctx = graphqlContext;
    const upgrade = { headers: { host: 'x' }, socket: { remoteAddress: '10.0.0.1' } };
    const ws = ctx({
      connectionParams: { Authorization: `Bearer ${KEY}` },
      extra: { request: upgrade as never },
    });
    expect(apiKeyOf(ws.req)).toBe(KEY);
    expect(ws.req.ip).toBe('10.0.0.1');
    expect(apiKeyOf(ctx({ connectionParams: { authorization: 'Bearer k2' } }).req)).toBe('k2');
    expect(apiKeyOf(ctx({ connectionParams: {} }).req)).toBeUndefined();
  });
});

describe('Authorization: Bearer', () => {
  it('REST and GraphQL accept it where they accept x-api-key, with the same checks', async () => {
    t = await createTestApp([{ name: 'tiny' }], { apiKeys: [KEY] });
    const s = t.app.getHttpServer();
    await request(s).post('/models/rescan').set('Authorization', `Bearer ${KEY}`).expect(200);
    await request(s).get('/fine-tunes').set('Authorization', `bearer ${KEY}`).expect(200);
    const wrong = await request(s).post('/models/rescan').set('Authorization', 'Bearer nope-nope');
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ code: 'UNAUTHORIZED', message: 'invalid API key' });
    const basic = await request(s).post('/models/rescan').set('Authorization', `Basic ${KEY}`);
    expect(basic.status).toBe(401);
    expect(basic.body.message).toMatch(/missing API key/);

    const gql = (auth?: string) => {
      const r = request(s).post('/graphql').set('content-type', 'application/json');
      if (auth) r.set('Authorization', auth);
      return r.send({ query: '{ fineTunes { id } }' });
    };
    const ok = await gql(`Bearer ${KEY}`);
    expect(ok.body.errors).toBeUndefined();
    expect(ok.body.data.fineTunes).toEqual([]);
    expect((await gql()).body.errors[0].extensions.code).toBe('UNAUTHORIZED');
    expect((await gql('Bearer nope-nope')).body.errors[0].extensions.code).toBe('UNAUTHORIZED');
  });

  it('graphql-ws subscriptions accept {"Authorization": "Bearer <key>"} as connection params', async () => {
    t = await createTestApp([{ name: 'tiny' }], { apiKeys: [KEY] });
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const WebSocket = createRequire(__filename)('ws') as unknown;
    const firstError = async (connectionParams: Record<string, string>) => {
      const c = createClient({
        url: `ws://127.0.0.1:${port}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams,
        retryAttempts: 0,
      });
      const it = c.iterate({
        query: 'subscription { fineTuneEvents(id: "ft_000000000000") { type } }',
      });
      const first = await it.next();
      await c.dispose();
      return (first.value as { errors: { extensions: { code: string } }[] }).errors[0].extensions
        .code;
    };
    // Authorised, the subscription gets as far as looking the job up.
    expect(await firstError({ Authorization: `Bearer ${KEY}` })).toBe('FINE_TUNE_NOT_FOUND');
    expect(await firstError({ Authorization: 'Bearer nope-nope' })).toBe('UNAUTHORIZED');
    expect(await firstError({})).toBe('UNAUTHORIZED');
  });

  it('the rate limit knows a client by its key, whichever header carries it (REST and v2)', async () => {
    t = await createTestApp([{ name: 'tiny' }], { rateLimitRps: 0.001, rateLimitBurst: 1 });
    const s = t.app.getHttpServer();
    const png = (await testPng(8, 8)).toString('base64');
    const classify = (h: Record<string, string>) =>
      request(s)
        .post('/classify')
        .set(h)
        .send({ images: [png] });
    const infer = (h: Record<string, string>) =>
      request(s)
        .post('/v2/models/tiny/infer')
        .set(h)
        .send({ inputs: [{ name: 'image_bytes', datatype: 'BYTES', shape: [1], data: [png] }] });
    expect((await classify({ Authorization: 'Bearer client-a' })).status).toBe(200);
    // Same key in the other header: the same bucket, now empty.
    const over = await classify({ 'x-api-key': 'client-a' });
    expect(over.status).toBe(429);
    expect((await infer({ Authorization: 'Bearer client-a' })).status).toBe(429);
    // Another key is another client; v2 infer takes a token from it like /classify.
    expect((await infer({ Authorization: 'Bearer client-b' })).status).toBe(200);
    const v2over = await infer({ 'x-api-key': 'client-b' });
    expect(v2over.status).toBe(429);
    expect(v2over.body).toMatchObject({ code: 'RATE_LIMITED' });
    expect(typeof v2over.body.error).toBe('string');
  });

  it('v2 inference stays open like REST inference when keys are configured', async () => {
    t = await createTestApp([{ name: 'tiny' }], { apiKeys: [KEY] });
    const png = (await testPng(8, 8)).toString('base64');
    await request(t.app.getHttpServer())
      .post('/v2/models/tiny/infer')
      .send({ inputs: [{ name: 'image_bytes', datatype: 'BYTES', shape: [1], data: [png] }] })
      .expect(200);
  });
});
