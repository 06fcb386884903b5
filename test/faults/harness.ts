/**
 * The fault suite's processes: the built server (`node dist/src/server/main.js`) and worker
 * (`dist/src/server/worker.js`) as production runs them, a private redis-server that may be stopped
 * (never the shared one on 6379), a tmpfs that fills up, and a tiny model and dataset so a real
 * fine-tune takes seconds. `npm run test:faults` builds first.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { AddressInfo, createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { zip, ZipSpec } from '../../src/server/datasets/testing/fixtures';
import { createTinyModel } from '../../src/prg/testing/tiny-model';

export const ROOT = path.resolve(__dirname, '../..');
export const MAIN_JS = path.join(ROOT, 'dist/src/server/main.js');
export const WORKER_JS = path.join(ROOT, 'dist/src/server/worker.js');

if (!existsSync(MAIN_JS) || !existsSync(WORKER_JS))
  throw new Error(`${MAIN_JS} missing: run \`npm run build\` first (npm run test:faults does)`);

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it returns a value other than undefined. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < end) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

/** A child process with its output kept (shown when a test fails). */
export class Proc {
  readonly child: ChildProcess;
  output = '';
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    file: string,
    args: string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      this.output += d.toString();
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exit = new Promise((r) => this.child.once('exit', (code, signal) => r({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitForOutput(re: RegExp, timeoutMs = 60_000): Promise<void> {
    await until(
      `${this.name} to print ${re}`,
      () => (re.test(this.output) ? true : undefined),
      timeoutMs,
    );
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child.kill(signal);
    await this.exit;
  }
}

const live = new Set<Proc>();

/** SIGKILLs every process this module started and that still runs (afterEach/afterAll). */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill('SIGKILL')));
  live.clear();
}

function nodeProc(name: string, entry: string, env: Record<string, string>): Proc {
  const p = new Proc(name, process.execPath, [entry], {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    ...env,
  });
  live.add(p);
  return p;
}

export interface Server {
  proc: Proc;
  url: string;
  port: number;
}

/** `node dist/src/server/main.js` on a free (or the given) port; resolves when /health/live answers. */
export async function startServer(env: Record<string, string>, port?: number): Promise<Server> {
  port ??= await freePort();
  const proc = nodeProc('server', MAIN_JS, {
    HOST: '127.0.0.1',
    PORT: String(port),
    PRG_THREADS: '1',
    RATE_LIMIT_RPS: '0',
    MODELS_RESCAN_MS: '0',
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await until(
    'the server to answer /health/live',
    async () => {
      if (!proc.running) throw new Error(`server exited:\n${proc.output}`);
      return (await fetch(`${url}/health/live`)).ok ? true : undefined;
    },
    90_000,
    100,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n--- server output ---\n${proc.output}`);
  });
  return { proc, url, port };
}

/** Resolves when /health/ready is 200 (the default model warm, Redis answering). */
export async function waitReady(s: Server, timeoutMs = 90_000): Promise<void> {
  await until(
    'readiness',
    async () => ((await fetch(`${s.url}/health/ready`)).ok ? true : undefined),
    timeoutMs,
    100,
  );
}

/** `node dist/src/server/worker.js`; resolves when it takes jobs. */
export async function startWorker(env: Record<string, string>): Promise<Proc> {
  const proc = nodeProc('worker', WORKER_JS, { PRG_THREADS: '1', ...env });
  await proc.waitForOutput(/fine-tune worker on/, 90_000).catch((e: Error) => {
    throw new Error(`${e.message}\n--- worker output ---\n${proc.output}`);
  });
  return proc;
}

/**
 * A redis-server of the suite's own on a free port with its own data dir and an append-only file
 * (so a stop and start keeps the queue, as a production Redis with persistence does).
 */
export class PrivateRedis {
  proc: Proc | null = null;
  constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async create(dir: string): Promise<PrivateRedis> {
    await fs.mkdir(dir, { recursive: true });
    const r = new PrivateRedis(await freePort(), dir);
    await r.start();
    return r;
  }

  async start(): Promise<void> {
    const p = new Proc(
      'redis',
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
      ],
      { PATH: process.env.PATH },
    );
    live.add(p);
    this.proc = p;
    await p.waitForOutput(/Ready to accept connections/, 15_000);
  }

  /** SIGTERM: redis-server flushes its append-only file and exits. */
  async stop(): Promise<void> {
    await this.proc?.kill('SIGTERM');
    this.proc = null;
  }
}

/** Whether `redis-server` is installed (the outage scenario needs its own). */
export function haveRedisServer(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Mounts a tmpfs of `size` on `dir`; returns why not when mounting is not permitted. */
export function mountTmpfs(dir: string, size: string): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (e) {
    return `mount -t tmpfs failed: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`;
  }
}

export function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    /* not mounted */
  }
}

/** Whether mount(2) of a tmpfs works here (root, or CAP_SYS_ADMIN); probed once. */
export const tmpfsProblem: string | null = (() => {
  const probe = path.join(os.tmpdir(), `prg-tmpfs-probe-${process.pid}`);
  try {
    execFileSync('mkdir', ['-p', probe]);
    const why = mountTmpfs(probe, '64k');
    if (why === null) unmount(probe);
    return why;
  } finally {
    execFileSync('rm', ['-rf', probe]);
  }
})();

/** A temp root with models/ (one tiny model, tiny@0.0.1), datasets/, jobs/ and uploads/. */
export async function tempRoot(prefix: string): Promise<{
  root: string;
  env: Record<string, string>;
}> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  const models = path.join(root, 'models');
  await createTinyModel(path.join(models, 'tiny-0.0.1'), {
    name: 'tiny',
    version: '0.0.1',
    classes: ['dark', 'light'],
    inputShape: [1, 8, 8],
    featurePool: 4,
    solver: { name: 'euler', steps: 2, tStar: 0.5 },
  });
  return {
    root,
    env: {
      MODELS_DIR: models,
      DATA_DIR: path.join(root, 'datasets'),
      JOBS_DIR: path.join(root, 'jobs'),
      UPLOAD_TMP_DIR: path.join(root, 'uploads'),
      DEFAULT_MODEL: 'tiny',
    },
  };
}

/** Two classes of flat 8×8 grey images told apart by brightness, `perClass` each, as a zip. */
export async function toyDatasetZip(perClass = 10): Promise<Buffer> {
  const flat = (v: number) =>
    sharp(Buffer.alloc(64, v), { raw: { width: 8, height: 8, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
  const entries: ZipSpec[] = [];
  for (let i = 0; i < perClass; i++) {
    entries.push({ name: `toy/dark/${i}.png`, data: await flat(20 + ((5 * i) % 80)) });
    entries.push({ name: `toy/light/${i}.png`, data: await flat(150 + ((5 * i) % 100)) });
  }
  return zip(entries);
}

export async function uploadDataset(
  url: string,
  zipBytes: Buffer,
  headers: Record<string, string> = {},
): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([zipBytes]), 'toy.zip');
  return fetch(`${url}/datasets`, { method: 'POST', body: form, headers });
}

export interface JobView {
  id: string;
  status: string;
  error: string | null;
  attempts: number;
  progress: { epoch: number; step: number; stepsPerEpoch: number } | null;
  history: { epoch: number }[];
  runs: { attempt: number; worker: string; outcome?: string; detail?: string }[];
  result: { model: string; steps?: number; resumedFromEpoch?: number; modelDir: string } | null;
}

export async function getJob(url: string, id: string): Promise<JobView> {
  const r = await fetch(`${url}/fine-tunes/${id}`);
  if (!r.ok) throw new Error(`GET /fine-tunes/${id}: ${r.status}`);
  return (await r.json()) as JobView;
}

export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

export async function waitJob(
  url: string,
  id: string,
  pred: (j: JobView) => boolean,
  timeoutMs = 180_000,
): Promise<JobView> {
  let last: JobView | undefined;
  return until(
    `job ${id}`,
    async () => {
      last = await getJob(url, id);
      return pred(last) ? last : undefined;
    },
    timeoutMs,
    50,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; last: ${JSON.stringify(last)}`);
  });
}

/** A tiny 8×8 grey PNG as base64 (classify bodies). */
export async function pngBase64(v = 100): Promise<string> {
  const png = await sharp(Buffer.alloc(64, v), { raw: { width: 8, height: 8, channels: 1 } })
    .png()
    .toBuffer();
  return png.toString('base64');
}

/** Entries of `dir` whose names start with "." (temp, staging, trash), recursively one level. */
export async function hiddenEntries(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('.'));
}
