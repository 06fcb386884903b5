/**
 * Server configuration from the environment, validated once at start. Every bad value is
 * reported (not only the first), each with the variable name, the value and what was expected.
 */
import * as path from 'node:path';
import { Env, envInt } from './env';

export type Device = 'cpu' | 'cuda';

/**
 * Which models are loaded and tuned before traffic (the server listens either way; readiness waits
 * for the default model unless `none`): all of them (in the background, after the default), only
 * the default model, or none (every model loads on first use).
 */
export const WARMUP_MODES = ['all', 'default', 'none'] as const;
export type WarmupMode = (typeof WARMUP_MODES)[number];

export interface ServerConfig {
  port: number;
  host: string;
  modelsDir: string;
  /** "name" or "name@version"; null = the first model found (sorted by id). */
  defaultModel: string | null;
  device: Device;
  /** ORT intra-op threads; 0 = one per core. */
  threads: number;
  /**
   * Worker threads per model running inference, each with its own copy of the model and its share
   * of the ORT threads; 0 = in the main thread. Default 1: onnxruntime-node runs block their
   * thread, and in the main thread a long batch would stall every request and health probe.
   */
  inferenceWorkers: number;
  redisUrl: string | null;
  /** Empty: no key required anywhere. */
  apiKeys: string[];
  /** Dynamic batching: largest coalesced ORT batch, and how long the first request waits. */
  maxBatch: number;
  maxWaitMs: number;
  /** Largest batch per model call; a coalesced batch runs in chunks of it. 0 = tuned at warm-up. */
  runBatch: number;
  /** Largest request body (JSON or multipart), bytes. */
  maxUploadBytes: number;
  /** Most images per request. */
  maxImages: number;
  /** Decoded pixel cap per image (width × height), passed to sharp's limitInputPixels. */
  maxPixels: number;
  /** Largest `steps` a request may ask for. */
  maxSteps: number;
  /** Largest `frames` for /trajectory. */
  maxFrames: number;
  /** Token bucket per client on expensive routes; rps 0 disables. */
  rateLimitRps: number;
  rateLimitBurst: number;
  /** Model directory rescan interval; 0 disables periodic rescans (POST /models/rescan still works). */
  rescanMs: number;
  /** WARMUP: which models are loaded and tuned at start (see WarmupMode). */
  warmup: WarmupMode;
  /** Most models held loaded at once; the least recently used is released past it. */
  maxLoadedModels: number;
  /**
   * MAX_GRAPHS: ORT sessions (one per solver/K/t/batch setting) kept per loaded model (and per
   * inference worker); the least recently used idle one is released past it.
   */
  maxGraphs: number;
  /**
   * STEPWISE_ABOVE_MB: velocity nets with more MiB of weights run every solver stepwise on one
   * shared velocity session (src/prg/inference.ts), so large imported nets (SiT-XL/2: 2.7 GB)
   * hold their weights once whatever settings are cached; 0 = always stepwise.
   */
  stepwiseAboveMb: number;
  /** Time allowed for in-flight requests to finish on SIGTERM. */
  shutdownGraceMs: number;
  /**
   * SHUTDOWN_DELAY_MS: on SIGTERM, how long readiness answers 503 while the server still accepts
   * and serves requests, before it stops listening (so a load balancer polling readiness stops
   * sending first). 0 under Kubernetes, whose preStop sleep does the same.
   */
  shutdownDelayMs: number;
  /**
   * V8's old-generation growth factor, as a percentage over the live heap (V8's
   * --heap-growing-percent); 0 = V8's own rule. See heap-growth.ts for why the server sets it.
   */
  heapGrowingPercent: number;
  /** CORS_ORIGINS: origins allowed cross-origin (`*` = any); empty = no CORS headers at all. */
  corsOrigins: string[];
  /** GraphQL introspection and the landing page (playground): off by default when NODE_ENV=production. */
  graphqlIntrospection: boolean;
  graphqlPlayground: boolean;
  /** GraphQL document limits, checked at validation (before any resolver runs). */
  graphqlMaxDepth: number;
  graphqlMaxAliases: number;
  graphqlMaxCost: number;
  graphqlMaxTokens: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Parse and validate; throws ConfigError listing every bad variable. */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): ServerConfig {
  const problems: string[] = [];
  const str = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const int = envInt(env, problems);
  const num = (name: string, def: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === undefined) return def;
    const v = Number(raw);
    if (!Number.isFinite(v) || v < min || v > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a number in [${min}, ${max}]`);
      return def;
    }
    return v;
  };
  const bool = (name: string, def: boolean): boolean => {
    const raw = str(name);
    if (raw === undefined) return def;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    problems.push(`${name}=${JSON.stringify(raw)}: expected a boolean (1/0, true/false)`);
    return def;
  };

  const deviceRaw = str('PRG_DEVICE') ?? 'cpu';
  let device: Device = 'cpu';
  if (deviceRaw === 'cpu' || deviceRaw === 'cuda') device = deviceRaw;
  else problems.push(`PRG_DEVICE=${JSON.stringify(deviceRaw)}: expected "cpu" or "cuda"`);

  let redisUrl: string | null = str('REDIS_URL') ?? null;
  if (redisUrl !== null) {
    try {
      const u = new URL(redisUrl);
      if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error('protocol');
    } catch {
      problems.push(
        `REDIS_URL=${JSON.stringify(redisUrl)}: expected a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379`,
      );
      redisUrl = null;
    }
  }

  const apiKeys = (str('PRG_API_KEYS') ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  for (const k of apiKeys)
    if (k.length < 8 || /\s/.test(k))
      problems.push(
        `PRG_API_KEYS: key "${k.slice(0, 3)}…" is too short or has whitespace (8+ characters, no spaces)`,
      );

  // WARMUP names the mode; the older boolean PRG_WARMUP still works (1 = all, 0 = none).
  let warmup: WarmupMode = 'default';
  const warmupRaw = str('WARMUP');
  if (warmupRaw !== undefined) {
    if ((WARMUP_MODES as readonly string[]).includes(warmupRaw)) warmup = warmupRaw as WarmupMode;
    else
      problems.push(
        `WARMUP=${JSON.stringify(warmupRaw)}: expected one of ${WARMUP_MODES.join(', ')}`,
      );
  } else if (str('PRG_WARMUP') !== undefined) warmup = bool('PRG_WARMUP', true) ? 'all' : 'none';

  const defaultModel = str('DEFAULT_MODEL') ?? null;
  if (defaultModel !== null && !/^[A-Za-z0-9._-]+(@[A-Za-z0-9._-]+)?$/.test(defaultModel))
    problems.push(
      `DEFAULT_MODEL=${JSON.stringify(defaultModel)}: expected "name" or "name@version"`,
    );

  const production = str('NODE_ENV') === 'production';
  const corsOrigins = (str('CORS_ORIGINS') ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o.length > 0);
  for (const o of corsOrigins)
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o))
      problems.push(`CORS_ORIGINS: "${o}" is not an origin (scheme://host[:port], no path) or "*"`);

  const config: ServerConfig = {
    port: int('PORT', 3000, 0, 65535),
    host: str('HOST') ?? '0.0.0.0',
    modelsDir: path.resolve(cwd, str('MODELS_DIR') ?? 'models'),
    defaultModel,
    device,
    threads: int('PRG_THREADS', 0, 0, 256),
    inferenceWorkers: int('PRG_INFERENCE_WORKERS', 1, 0, 64),
    redisUrl,
    apiKeys,
    maxBatch: int('MAX_BATCH', 32, 1, 1024),
    maxWaitMs: num('MAX_WAIT_MS', 5, 0, 10_000),
    runBatch: int('RUN_BATCH', 0, 0, 1024),
    maxUploadBytes: int('MAX_UPLOAD_BYTES', 20 * 1024 * 1024, 1024, 2 ** 31),
    maxImages: int('MAX_IMAGES', 64, 1, 4096),
    maxPixels: int('MAX_PIXELS', 4096 * 4096, 1, 2 ** 30),
    maxSteps: int('MAX_STEPS', 200, 1, 10_000),
    maxFrames: int('MAX_FRAMES', 32, 2, 1000),
    rateLimitRps: num('RATE_LIMIT_RPS', 50, 0, 1e6),
    rateLimitBurst: int('RATE_LIMIT_BURST', 100, 1, 1e6),
    rescanMs: int('MODELS_RESCAN_MS', 5000, 0, 86_400_000),
    warmup,
    maxLoadedModels: int('MAX_LOADED_MODELS', 4, 1, 1000),
    maxGraphs: int('MAX_GRAPHS', 16, 1, 1000),
    stepwiseAboveMb: int('STEPWISE_ABOVE_MB', 512, 0, 1_000_000),
    shutdownGraceMs: int('SHUTDOWN_GRACE_MS', 25_000, 0, 600_000),
    shutdownDelayMs: int('SHUTDOWN_DELAY_MS', 0, 0, 600_000),
    heapGrowingPercent: int('HEAP_GROWING_PERCENT', 50, 0, 1000),
    corsOrigins,
    graphqlIntrospection: bool('GRAPHQL_INTROSPECTION', !production),
    graphqlPlayground: bool('GRAPHQL_PLAYGROUND', !production),
    graphqlMaxDepth: int('GRAPHQL_MAX_DEPTH', 8, 1, 100),
    graphqlMaxAliases: int('GRAPHQL_MAX_ALIASES', 4, 0, 1000),
    graphqlMaxCost: int('GRAPHQL_MAX_COST', 2000, 1, 1e6),
    graphqlMaxTokens: int('GRAPHQL_MAX_TOKENS', 1000, 10, 1e6),
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/**
 * For tests: defaults with overrides, no environment; no warm-up, no periodic rescan, inference in
 * the main thread (worker threads have their own spec).
 */
export function testConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return { ...loadConfig({}), warmup: 'none', rescanMs: 0, inferenceWorkers: 0, ...overrides };
}
