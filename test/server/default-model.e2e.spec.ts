/**
 * Which model a request without `model` gets when DEFAULT_MODEL is unset: ./models ships several
 * models, all fine-tuned (each has a provenance.parent), and `npm start` must serve prg-mnist.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, TestApp } from '../../src/server/testing/test-app';

let t: TestApp;

beforeAll(async () => {
  // "a-first" sorts before "prg-mnist", so an id-order rule alone would pick it.
  t = await createTestApp([
    { name: 'a-first', version: '1', classes: 2, seed: 1 },
    { name: 'prg-mnist', version: '1', classes: 2, seed: 2 },
    { name: 'prg-mnist', version: '2', classes: 2, seed: 3 },
  ]);
});

afterAll(async () => {
  await t?.close();
});

describe('default model without DEFAULT_MODEL', () => {
  it('is the latest prg-mnist when present', async () => {
    const r = await request(t.app.getHttpServer()).get('/models').expect(200);
    expect(r.body.default).toBe('prg-mnist@2');
  });
});
