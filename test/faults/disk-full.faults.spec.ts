/**
 * Disk full: DATA_DIR, MODELS_DIR, JOBS_DIR and UPLOAD_TMP_DIR on a 4 MiB tmpfs, filled with a
 * ballast file to leave little room. An upload that does not fit is answered 507 STORAGE_FULL
 * (whether the request body or the extracted dataset hits the limit), a fine-tune that cannot
 * write its checkpoints or model fails with a reason starting STORAGE_FULL; nothing half-written
 * is left or listed, and the server keeps serving. Needs mount(2) (root): skipped, with the reason
 * printed, where a tmpfs cannot be mounted.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zip, ZipSpec } from '../../src/server/datasets/testing/fixtures';
import {
  hiddenEntries,
  killAll,
  mountTmpfs,
  pngBase64,
  Server,
  startServer,
  tempRoot,
  TERMINAL,
  tmpfsProblem,
  toyDatasetZip,
  unmount,
  until,
  uploadDataset,
  waitJob,
  waitReady,
} from './harness';

if (tmpfsProblem) console.warn(`[faults] disk-full scenario skipped: ${tmpfsProblem}`);

let root: string;
let disk: string;
let env: Record<string, string>;
let s: Server;
const ballast = () => path.join(disk, 'ballast');

/** Fills the tmpfs with a ballast file until `leaveBytes` (about) are free. */
async function fillLeaving(leaveBytes: number): Promise<void> {
  await fs.rm(ballast(), { force: true });
  const st = await fs.statfs(disk);
  const free = st.bavail * st.bsize;
  const fh = await fs.open(ballast(), 'w');
  try {
    await fh.write(Buffer.alloc(Math.max(0, free - leaveBytes), 1));
  } finally {
    await fh.close();
  }
}

/** A zip of `n` 64×64 RGB noise PNGs (~12 KB each, incompressible). */
async function noiseZip(n: number): Promise<Buffer> {
  const entries: ZipSpec[] = [];
  for (let i = 0; i < n; i++) {
    const px = Buffer.alloc(64 * 64 * 3);
    for (let j = 0; j < px.length; j++) px[j] = (Math.imul(j + 1, 2654435761) ^ (i * 7919)) >>> 24;
    const data = await sharp(px, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toBuffer();
    entries.push({ name: `noise/${i % 2 ? 'a' : 'b'}/${i}.png`, data });
  }
  return zip(entries);
}

async function nothingHalfWritten(): Promise<void> {
  expect(await hiddenEntries(env.DATA_DIR)).toEqual([]);
  expect(await hiddenEntries(env.MODELS_DIR)).toEqual([]);
  // The upload's temp file is removed as the response ends (asynchronously).
  await until(
    'the upload temp dir to empty',
    async () => ((await fs.readdir(env.UPLOAD_TMP_DIR)).length === 0 ? true : undefined),
    5000,
  );
}

beforeAll(async () => {
  if (tmpfsProblem) return;
  ({ root, env } = await tempRoot('prg-faults-disk-'));
  const models = env.MODELS_DIR;
  disk = path.join(root, 'disk');
  await fs.mkdir(disk);
  const why = mountTmpfs(disk, '4m');
  if (why) throw new Error(why);
  // The tiny model moves onto the small disk with everything else.
  await fs.cp(models, path.join(disk, 'models'), { recursive: true });
  env = {
    ...env,
    MODELS_DIR: path.join(disk, 'models'),
    DATA_DIR: path.join(disk, 'datasets'),
    JOBS_DIR: path.join(disk, 'jobs'),
    UPLOAD_TMP_DIR: path.join(disk, 'uploads'),
    WORKER: '1',
  };
  s = await startServer(env);
  await waitReady(s);
});

afterAll(async () => {
  await killAll();
  if (disk) unmount(disk);
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe.skipIf(tmpfsProblem !== null)('disk full (tmpfs of 4 MiB)', () => {
  it('an upload larger than the free space: 507 STORAGE_FULL while the body is stored', async () => {
    const big = await noiseZip(40);
    await fillLeaving(big.length / 2);
    const r = await uploadDataset(s.url, big);
    const body = (await r.json()) as { code: string; message: string };
    expect(r.status, JSON.stringify(body)).toBe(507);
    expect(body.code).toBe('STORAGE_FULL');
    expect(body.message).toMatch(/no space left/);
    expect(body.message).not.toContain(disk); // no host paths in error bodies
    await nothingHalfWritten();
  });

  it('an upload that fits but whose extraction does not: 507 STORAGE_FULL, nothing kept', async () => {
    const mid = await noiseZip(40); // stored (fits), then extracted beside it (does not)
    await fillLeaving(mid.length * 1.4);
    const r = await uploadDataset(s.url, mid);
    const body = (await r.json()) as { code: string };
    expect(r.status, JSON.stringify(body)).toBe(507);
    expect(body.code).toBe('STORAGE_FULL');
    await nothingHalfWritten();
    expect(await (await fetch(`${s.url}/datasets`)).json()).toEqual([]);
  });

  it('a fine-tune that cannot write its checkpoints or model fails naming the cause', async () => {
    await fs.rm(ballast(), { force: true });
    const up = await uploadDataset(s.url, await toyDatasetZip(10));
    expect(up.status).toBe(201);
    const dataset = ((await up.json()) as { id: string }).id;
    await fillLeaving(8 * 1024);
    const r = await fetch(`${s.url}/fine-tunes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tiny@0.0.1',
        dataset,
        hyperparameters: { epochs: 2, batchSize: 4, warmupEpochs: 0 },
      }),
    });
    expect(r.status).toBe(201);
    const id = ((await r.json()) as { id: string }).id;
    const done = await waitJob(s.url, id, (j) => TERMINAL.has(j.status));
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/^STORAGE_FULL: no space left/);
    expect(done.runs.map((x) => x.outcome)).toEqual(['failed']);
    await nothingHalfWritten();
    const models = (await (await fetch(`${s.url}/models`)).json()) as { models: { id: string }[] };
    expect(models.models.map((m) => m.id)).toEqual(['tiny@0.0.1']);
  });

  it('keeps serving, and stores again once space is freed', async () => {
    const c = await fetch(`${s.url}/classify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ images: [await pngBase64()] }),
    });
    expect(c.status).toBe(200);
    await fs.rm(ballast(), { force: true });
    expect((await uploadDataset(s.url, await noiseZip(40))).status).toBe(201);
    await nothingHalfWritten();
  });
});
