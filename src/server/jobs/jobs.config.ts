/** Job queue settings from the environment (validated; every bad variable reported). */
import * as path from 'node:path';
import { ConfigError } from '../config/config';
import { Env, envInt } from '../config/env';

export interface JobsConfig {
  /** null: the in-process queue (single node). */
  redisUrl: string | null;
  /** Run jobs in this process (WORKER, default on; WORKER=0 for API-only replicas). */
  worker: boolean;
  /** Redis key prefix of the bull queue (QUEUE_PREFIX, default "prg"). */
  prefix: string;
  /**
   * Per-job checkpoint dirs: JOBS_DIR/<id>/checkpoints, shared by all workers. Default: `jobs` beside
   * DATA_DIR (./data/jobs; /data/jobs in the image and chart, on the shared data volume).
   */
  jobsDir: string;
  /** bull lock: a worker that stops renewing it for this long is presumed dead (JOB_LOCK_MS). */
  lockDurationMs: number;
  /** How often workers look for jobs whose lock expired (JOB_STALLED_INTERVAL_MS). */
  stalledIntervalMs: number;
  /** A job may be picked up again this many times after its worker died (JOB_MAX_STALLED). */
  maxStalledCount: number;
  /**
   * Most jobs one API key may have queued or running at once (MAX_JOBS_PER_KEY; 0 = no limit).
   * Without PRG_API_KEYS every client shares one budget.
   */
  maxJobsPerKey: number;
  /** Largest `epochs` a request may ask for (MAX_EPOCHS). */
  maxEpochs: number;
  /**
   * Finished jobs kept per outcome (JOBS_KEEP): the newest N succeeded and the newest N failed or
   * cancelled (bull's completed and failed sets); older ones are removed with their files.
   */
  keepJobs: number;
  /** `npm run worker` serves Prometheus /metrics on this port (WORKER_METRICS_PORT; null = off). */
  workerMetricsPort: number | null;
}

export function loadJobsConfig(
  redisUrl: string | null,
  env: Env = process.env,
  cwd = process.cwd(),
): JobsConfig {
  const problems: string[] = [];
  const int = envInt(env, problems);
  let worker = true;
  const w = env.WORKER?.trim();
  if (w !== undefined && w !== '') {
    if (/^(1|true|yes|on)$/i.test(w)) worker = true;
    else if (/^(0|false|no|off)$/i.test(w)) worker = false;
    else problems.push(`WORKER=${JSON.stringify(w)}: expected 1 or 0`);
  }
  const prefix = env.QUEUE_PREFIX?.trim() || 'prg';
  if (!/^[\w:.-]{1,64}$/.test(prefix))
    problems.push(`QUEUE_PREFIX=${JSON.stringify(prefix)}: expected 1-64 of [A-Za-z0-9_:.-]`);
  const config: JobsConfig = {
    redisUrl,
    worker,
    prefix,
    jobsDir: env.JOBS_DIR?.trim()
      ? path.resolve(cwd, env.JOBS_DIR.trim())
      : path.join(path.dirname(path.resolve(cwd, env.DATA_DIR?.trim() || 'data/datasets')), 'jobs'),
    lockDurationMs: int('JOB_LOCK_MS', 30_000, 200, 3_600_000),
    stalledIntervalMs: int('JOB_STALLED_INTERVAL_MS', 30_000, 100, 3_600_000),
    maxStalledCount: int('JOB_MAX_STALLED', 5, 0, 1000),
    maxJobsPerKey: int('MAX_JOBS_PER_KEY', 8, 0, 1_000_000),
    maxEpochs: int('MAX_EPOCHS', 1000, 1, 1_000_000),
    keepJobs: int('JOBS_KEEP', 1000, 1, 1_000_000),
    workerMetricsPort: env.WORKER_METRICS_PORT?.trim()
      ? int('WORKER_METRICS_PORT', 0, 1, 65535)
      : null,
  };
  if (!worker && redisUrl === null)
    problems.push('WORKER=0 needs REDIS_URL: without Redis, jobs only run in the API process');
  if (problems.length) throw new ConfigError(problems);
  return config;
}
