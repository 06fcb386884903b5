/**
 * The API SIGKILLed mid-write: during a dataset upload (while the body streams in, and while the
 * zip is extracted and checked) and during a model write (a fine-tune's staged model, written by
 * the API's in-process worker). On restart no half-written dataset or model is visible and the
 * temp files the killed process left are gone (removed at start-up: their owner, this host's
 * dead pid, is in their names).
 */
import { promises as fs, watch } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { zip, ZipSpec } from '../../src/server/datasets/testing/fixtures';
import {
  hiddenEntries,
  killAll,
  Server,
  sleep,
  startServer,
  tempRoot,
  toyDatasetZip,
  until,
  uploadDataset,
  waitReady,
} from './harness';

let root: string;
let env: Record<string, string>;

beforeAll(async () => {
  ({ root, env } = await tempRoot('prg-faults-apikill-'));
});
afterEach(killAll);
afterAll(async () => {
  await killAll();
  if (root) await fs.rm(root, { recursive: true, force: true });
});

/** A zip of `n` 256×256 noise PNGs (~200 KB each; slow enough to decode that a kill lands mid-check). */
async function bigZip(n: number): Promise<Buffer> {
  const entries: ZipSpec[] = [];
  for (let i = 0; i < n; i++) {
    const px = Buffer.alloc(256 * 256 * 3);
    for (let j = 0; j < px.length; j++) px[j] = (j * 2654435761 + i * 97) >>> 24;
    const data = await sharp(px, { raw: { width: 256, height: 256, channels: 3 } })
      .png()
      .toBuffer();
    entries.push({ name: `big/${i % 2 ? 'a' : 'b'}/${i}.png`, data });
  }
  return zip(entries);
}

async function datasetsListed(s: Server): Promise<string[]> {
  const r = await fetch(`${s.url}/datasets`);
  const body = (await r.json()) as { id: string }[] | { datasets: { id: string }[] };
  return (Array.isArray(body) ? body : body.datasets).map((d) => d.id);
}

/** Everything under DATA_DIR and UPLOAD_TMP_DIR that is not a finished dataset. */
async function leftovers(): Promise<string[]> {
  const uploads = await fs.readdir(env.UPLOAD_TMP_DIR).catch(() => [] as string[]);
  return [...(await hiddenEntries(env.DATA_DIR)), ...uploads.map((u) => `uploads/${u}`)];
}

describe('API SIGKILLed during a dataset upload', () => {
  it('mid-body: on restart nothing is listed and the partial upload file is gone', async () => {
    const s = await startServer(env);
    await waitReady(s);
    const before = await datasetsListed(s);
    const body = await bigZip(40);
    // Stream the body slowly so the kill lands while multer writes the temp file.
    const form = new FormData();
    form.append('file', new Blob([body]), 'big.zip');
    const req = new Request(`${s.url}/datasets`, { method: 'POST', body: form });
    const bytes = new Uint8Array(await req.arrayBuffer());
    const slow = new ReadableStream<Uint8Array>({
      async start(c) {
        for (let i = 0; i < bytes.length; i += 64 * 1024) {
          c.enqueue(bytes.subarray(i, i + 64 * 1024));
          await sleep(20);
        }
        c.close();
      },
    });
    const upload = fetch(`${s.url}/datasets`, {
      method: 'POST',
      body: slow,
      headers: { 'content-type': req.headers.get('content-type')! },
      duplex: 'half',
    } as RequestInit).catch((e: Error) => e);
    await until('the upload temp file', async () =>
      (await fs.readdir(env.UPLOAD_TMP_DIR).catch(() => [])).length > 0 ? true : undefined,
    );
    await s.proc.kill('SIGKILL');
    expect(await upload).toBeInstanceOf(Error);
    expect((await leftovers()).length).toBeGreaterThan(0); // what the killed process left

    const s2 = await startServer(env);
    expect(await leftovers()).toEqual([]);
    expect(await datasetsListed(s2)).toEqual(before);
    expect(s2.proc.output).toMatch(/removed \d+ temp file\(s\) of a stopped process/);
  });

  it('mid-extraction: on restart nothing is listed and the temp dataset dir is gone', async () => {
    const s = await startServer(env);
    await waitReady(s);
    const before = await datasetsListed(s);
    const upload = uploadDataset(s.url, await bigZip(40)).catch((e: Error) => e);
    // The dataset's temp dir appears once the body is in; kill while it is being filled.
    await until(
      'the temp dataset dir',
      async () =>
        (await hiddenEntries(env.DATA_DIR)).some((n) => n.startsWith('.tmp-')) ? true : undefined,
      60_000,
      5,
    );
    await s.proc.kill('SIGKILL');
    expect(await upload).toBeInstanceOf(Error);
    expect((await hiddenEntries(env.DATA_DIR)).some((n) => n.startsWith('.tmp-'))).toBe(true);

    const s2 = await startServer(env);
    expect(await leftovers()).toEqual([]);
    expect(await datasetsListed(s2)).toEqual(before);
    // A complete upload still works.
    expect((await uploadDataset(s2.url, await toyDatasetZip(10))).status).toBe(201);
  });
});

describe('API SIGKILLed during a model write', () => {
  it('the staged model of its in-process job is never listed and is removed on restart', async () => {
    const s = await startServer({ ...env, WORKER: '1' });
    await waitReady(s);
    const up = await uploadDataset(s.url, await toyDatasetZip(10));
    expect(up.status).toBe(201);
    const dataset = ((await up.json()) as { id: string }).id;
    const r = await fetch(`${s.url}/fine-tunes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tiny@0.0.1',
        dataset,
        hyperparameters: { epochs: 1, batchSize: 4, warmupEpochs: 0 },
      }),
    });
    expect(r.status).toBe(201);
    const id = ((await r.json()) as { id: string }).id;
    const staging = path.join(env.MODELS_DIR, `.staging-${id}`);
    await until(
      'the staging dir',
      async () => ((await fs.stat(staging).catch(() => null)) ? true : undefined),
      120_000,
      5,
    );
    // The model is written into the staging dir as `.model.<tag>.tmp`, then renamed: kill the
    // moment that temp dir appears (inotify), i.e. while the model's files are being written.
    let caught = '';
    await new Promise<void>((resolve, reject) => {
      const w = watch(staging, (_e, name) => {
        if (name && /\.tmp$/.test(String(name)) && !caught) {
          caught = String(name);
          s.proc.child.kill('SIGKILL');
          w.close();
          resolve();
        }
      });
      s.proc.exit.then(() => {
        w.close();
        if (!caught) reject(new Error(`server exited before the model write:\n${s.proc.output}`));
      });
    });
    await s.proc.exit;
    expect(caught).toMatch(/^\.model\..*\.tmp$/);
    expect(await hiddenEntries(env.MODELS_DIR)).toContain(`.staging-${id}`);

    const s2 = await startServer({ ...env, WORKER: '1' });
    await waitReady(s2);
    expect(await hiddenEntries(env.MODELS_DIR)).toEqual([]);
    const models = (await (await fetch(`${s2.url}/models`)).json()) as { models: { id: string }[] };
    expect(models.models.map((m) => m.id)).toEqual(['tiny@0.0.1']);
    expect(s2.proc.output).toMatch(/removed staging dir\(s\) of a stopped process/);
  });
});
