/**
 * Security settings end to end: helmet's headers, the CORS policy from CORS_ORIGINS, GraphQL
 * depth/alias/token limits, CSRF prevention, introspection and the landing page off in production
 * by default, API keys on GraphQL mutations, and error bodies without stacks or host paths.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/server/config/config';
import { createTestApp, TestApp } from '../../src/server/testing/test-app';

const KEY = 'security-key-1';
let dev: TestApp;
let prod: TestApp;

beforeAll(async () => {
  delete process.env.REDIS_URL;
  dev = await createTestApp([{ name: 'tiny' }], {
    defaultModel: 'tiny',
    corsOrigins: ['https://app.example'],
    apiKeys: [KEY],
  });
  const p = loadConfig({ NODE_ENV: 'production' });
  prod = await createTestApp([{ name: 'tiny' }], {
    defaultModel: 'tiny',
    graphqlIntrospection: p.graphqlIntrospection,
    graphqlPlayground: p.graphqlPlayground,
    graphqlMaxDepth: 2,
  });
});

afterAll(async () => {
  await dev?.close();
  await prod?.close();
});

const gql = (t: TestApp, query: string, headers: Record<string, string> = {}) =>
  request(t.app.getHttpServer()).post('/graphql').set(headers).send({ query });

describe('security', () => {
  it('sets helmet headers and no x-powered-by', async () => {
    const r = await request(dev.app.getHttpServer()).get('/health/live').expect(200);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(r.headers['strict-transport-security']).toMatch(/max-age=/);
    expect(r.headers['x-powered-by']).toBeUndefined();
  });

  it('answers CORS for the configured origin only', async () => {
    const ok = await request(dev.app.getHttpServer())
      .options('/classify')
      .set('origin', 'https://app.example')
      .set('access-control-request-method', 'POST');
    expect(ok.headers['access-control-allow-origin']).toBe('https://app.example');
    const other = await request(dev.app.getHttpServer())
      .get('/health/live')
      .set('origin', 'https://evil.example');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const none = await request(prod.app.getHttpServer())
      .get('/health/live')
      .set('origin', 'https://app.example');
    expect(none.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses GraphQL documents over the depth, alias and token limits before resolving', async () => {
    const aliases = Array.from({ length: 5 }, (_, i) => `a${i}: models { id }`).join(' ');
    const r1 = await gql(dev, `{ ${aliases} }`);
    expect(r1.status).toBe(400);
    expect(r1.body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(r1.body.errors[0].message).toMatch(/alias/i);
    const deep = await gql(prod, '{ models { input { channels } } }');
    expect(deep.status).toBe(400);
    expect(deep.body.errors[0].message).toMatch(/depth/i);
    expect((await gql(prod, '{ models { id } }')).status).toBe(200);
    const r2 = await gql(dev, `{ models ${'{ id '.repeat(2000)}${'}'.repeat(2000)} }`);
    expect(r2.status).toBe(400);
    expect(r2.body.errors[0].extensions.code).toBe('GRAPHQL_PARSE_FAILED');
    expect(r2.body.errors[0].message).toMatch(/token/i);
  });

  it('CSRF prevention: a GET query or a text/plain POST without a preflight header is refused', async () => {
    const get = await request(dev.app.getHttpServer())
      .get('/graphql')
      .query({ query: '{ models { id } }' });
    expect(get.status).toBe(400);
    expect(get.text).toMatch(/CSRF/i);
    const post = await request(dev.app.getHttpServer())
      .post('/graphql')
      .set('content-type', 'text/plain')
      .send(JSON.stringify({ query: '{ models { id } }' }));
    expect(post.status).toBeGreaterThanOrEqual(400);
    expect(post.status).toBeLessThan(500);
  });

  it('introspection and the landing page: on in development, off in production by default', async () => {
    expect(loadConfig({}).graphqlIntrospection).toBe(true);
    expect(loadConfig({ NODE_ENV: 'production' })).toMatchObject({
      graphqlIntrospection: false,
      graphqlPlayground: false,
    });
    expect(
      loadConfig({ NODE_ENV: 'production', GRAPHQL_INTROSPECTION: '1' }).graphqlIntrospection,
    ).toBe(true);
    const q = '{ __schema { types { name } } }';
    expect((await gql(dev, q)).body.data.__schema.types.length).toBeGreaterThan(5);
    const off = await gql(prod, q);
    expect(off.status).toBe(400);
    expect(off.body.errors[0].message).toMatch(/introspection/i);
  });

  it('GraphQL mutations need an API key; a wrong key is 401 and never echoed', async () => {
    const m = 'mutation { cancelFineTune(id: "ft_x") { id } }';
    const none = await gql(dev, m);
    expect(none.body.errors[0].extensions).toMatchObject({ code: 'UNAUTHORIZED', statusCode: 401 });
    const wrong = await gql(dev, m, { 'x-api-key': 'wrong-key-123456' });
    expect(wrong.body.errors[0].extensions.code).toBe('UNAUTHORIZED');
    expect(wrong.text).not.toContain('wrong-key-123456');
    const ok = await gql(dev, m, { 'x-api-key': KEY });
    expect(ok.body.errors[0].extensions.code).toBe('FINE_TUNE_NOT_FOUND');
  });

  it('error bodies carry no stack trace and no host path', async () => {
    const answers = [
      await request(dev.app.getHttpServer()).post('/classify').send('{"images": ['),
      await request(dev.app.getHttpServer()).get('/models/nope'),
      await gql(dev, '{ classify(images: ["AAAA"]) { model } }'),
      await gql(dev, '{ nope }'),
    ];
    for (const r of answers) {
      expect(r.status).toBeGreaterThanOrEqual(200);
      for (const leak of [/\n\s+at /, /node_modules/, dev.modelsDir, process.cwd()])
        expect(typeof leak === 'string' ? r.text.includes(leak) : leak.test(r.text), r.text).toBe(
          false,
        );
    }
  });
});
