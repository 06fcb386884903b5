/** Spec helpers for fine-tune jobs: polling, SSE collection, a switchable fake trainer. */
import type { INestApplication } from '@nestjs/common';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import type { FineTuneJobOptions, FineTuneJobResult } from '../../../prg/training/job-api';
import type { FineTuneJobView, FineTuneTrainer } from '../fine-tune.types';

/** Polls GET /fine-tunes/:id until `until` holds (the timeout only guards against hanging). */
export async function waitForJob(
  app: INestApplication,
  id: string,
  until: (j: FineTuneJobView) => boolean,
  headers: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<FineTuneJobView> {
  const start = Date.now();
  let last: FineTuneJobView | undefined;
  while (Date.now() - start < timeoutMs) {
    const res = await request(app.getHttpServer()).get(`/fine-tunes/${id}`).set(headers);
    last = res.body as FineTuneJobView;
    if (res.status === 200 && until(last)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`job ${id} did not reach the expected state; last: ${JSON.stringify(last)}`);
}

export interface SseEvent {
  event: string;
  data: unknown;
}

export function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .map((block) => {
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      return data.length ? { event, data: JSON.parse(data.join('\n')) as unknown } : null;
    })
    .filter((e): e is SseEvent => e !== null);
}

/** GET an SSE route and read it to the end (the server ends it after a terminal status). */
export async function readSse(
  app: INestApplication,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; contentType: string; events: SseEvent[]; body: unknown }> {
  const res = await request(app.getHttpServer())
    .get(url)
    .set(headers)
    .buffer(true)
    .parse((r, cb) => {
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (text += c));
      r.on('end', () => cb(null, text));
    });
  const text = String(res.body);
  const isSse = String(res.headers['content-type']).startsWith('text/event-stream');
  return {
    status: res.status,
    contentType: String(res.headers['content-type']),
    events: isSse ? parseSse(text) : [],
    body: isSse ? null : (JSON.parse(text) as unknown),
  };
}

/** A trainer that delegates to whatever `set` installed last (tests swap fakes per case). */
export function switchableTrainer(initial: FineTuneTrainer): {
  trainer: FineTuneTrainer;
  set(t: FineTuneTrainer): void;
} {
  let current = initial;
  return {
    trainer: (o: FineTuneJobOptions): Promise<FineTuneJobResult> => current(o),
    set: (t) => (current = t),
  };
}

/**
 * A temp directory holding this spec's DATA_DIR, JOBS_DIR and UPLOAD_TMP_DIR, set in the
 * environment with `env` (read when the app is built). Returns the directory.
 */
export async function tempJobsEnv(
  prefix: string,
  env: Record<string, string> = {},
): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  Object.assign(process.env, {
    DATA_DIR: path.join(root, 'datasets'),
    JOBS_DIR: path.join(root, 'jobs'),
    UPLOAD_TMP_DIR: path.join(root, 'uploads'),
    ...env,
  });
  return root;
}
