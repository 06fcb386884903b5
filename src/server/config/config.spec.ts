import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
  it('defaults: port 3000, ./models, cpu, no keys', () => {
    const c = loadConfig({}, '/srv');
    expect(c).toMatchObject({
      port: 3000,
      modelsDir: '/srv/models',
      device: 'cpu',
      apiKeys: [],
      redisUrl: null,
    });
  });

  it('parses every variable', () => {
    const c = loadConfig(
      {
        PORT: '8080',
        MODELS_DIR: '/m',
        PRG_DEVICE: 'cuda',
        PRG_THREADS: '2',
        REDIS_URL: 'redis://127.0.0.1:6379',
        PRG_API_KEYS: 'key-one-123, key-two-456',
        MAX_BATCH: '16',
        MAX_WAIT_MS: '2.5',
        DEFAULT_MODEL: 'prg-mnist@1.0.0',
      },
      '/',
    );
    expect(c).toMatchObject({
      port: 8080,
      modelsDir: '/m',
      device: 'cuda',
      threads: 2,
      redisUrl: 'redis://127.0.0.1:6379',
      apiKeys: ['key-one-123', 'key-two-456'],
      maxBatch: 16,
      maxWaitMs: 2.5,
      defaultModel: 'prg-mnist@1.0.0',
    });
  });

  it('reports every bad value with its name, value and what was expected', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({
        PORT: 'eighty',
        PRG_DEVICE: 'tpu',
        REDIS_URL: 'http://x',
        MAX_BATCH: '0',
        MAX_WAIT_MS: '-1',
        PRG_API_KEYS: 'short',
        PRG_WARMUP: 'maybe',
      });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toHaveLength(7);
    expect(err!.message).toMatch(/PORT="eighty": expected an integer in \[0, 65535\]/);
    expect(err!.message).toMatch(/PRG_DEVICE="tpu": expected "cpu" or "cuda"/);
    expect(err!.message).toMatch(/REDIS_URL="http:\/\/x"/);
    expect(err!.message).toMatch(/MAX_BATCH="0"/);
    expect(err!.message).toMatch(/MAX_WAIT_MS="-1"/);
    expect(err!.message).toMatch(/PRG_API_KEYS/);
    expect(err!.message).toMatch(/PRG_WARMUP="maybe"/);
  });

  it("HEAP_GROWING_PERCENT: 50 by default, 0 keeps V8's rule, out of range is an error", () => {
    expect(loadConfig({}).heapGrowingPercent).toBe(50);
    expect(loadConfig({ HEAP_GROWING_PERCENT: '0' }).heapGrowingPercent).toBe(0);
    expect(loadConfig({ HEAP_GROWING_PERCENT: '200' }).heapGrowingPercent).toBe(200);
    expect(() => loadConfig({ HEAP_GROWING_PERCENT: '-5' })).toThrow(
      /HEAP_GROWING_PERCENT="-5": expected an integer in \[0, 1000\]/,
    );
  });

  it('WARMUP picks the start-up warm-up (default: the default model); PRG_WARMUP still works', () => {
    expect(loadConfig({}).warmup).toBe('default');
    expect(loadConfig({ WARMUP: 'all' }).warmup).toBe('all');
    expect(loadConfig({ WARMUP: 'none', PRG_WARMUP: '1' }).warmup).toBe('none');
    expect(loadConfig({ PRG_WARMUP: '1' }).warmup).toBe('all');
    expect(loadConfig({ PRG_WARMUP: '0' }).warmup).toBe('none');
    expect(() => loadConfig({ WARMUP: 'some' })).toThrow(
      /WARMUP="some": expected one of all, default, none/,
    );
    expect(loadConfig({}).maxLoadedModels).toBe(4);
    expect(loadConfig({ MAX_LOADED_MODELS: '1' }).maxLoadedModels).toBe(1);
    expect(() => loadConfig({ MAX_LOADED_MODELS: '0' })).toThrow(/MAX_LOADED_MODELS="0"/);
    expect(loadConfig({}).maxGraphs).toBe(16);
    expect(loadConfig({}).stepwiseAboveMb).toBe(512);
    const c = loadConfig({ MAX_GRAPHS: '2', STEPWISE_ABOVE_MB: '0' });
    expect([c.maxGraphs, c.stepwiseAboveMb]).toEqual([2, 0]);
    expect(() => loadConfig({ MAX_GRAPHS: '0' })).toThrow(/MAX_GRAPHS="0"/);
    expect(() => loadConfig({ STEPWISE_ABOVE_MB: '-1' })).toThrow(/STEPWISE_ABOVE_MB="-1"/);
  });
});
