import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ServerConfig } from '../config/config';
import { ModelCatalog } from './model-catalog';

/** A promise with its resolver, to hold a scan open while the test calls rescan() again. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

function catalogWithScriptedScans(): {
  catalog: ModelCatalog;
  scans: ReturnType<typeof deferred>[];
} {
  const config = { modelsDir: mkdtempSync(join(tmpdir(), 'catalog-')), rescanMs: 0 };
  const catalog = new ModelCatalog(config as unknown as ServerConfig);
  const scans: ReturnType<typeof deferred>[] = [];
  // Each scan waits until the test resolves it, so the order of events is the test's to choose.
  (catalog as unknown as { scan: () => Promise<void> }).scan = () => {
    const d = deferred();
    scans.push(d);
    return d.promise;
  };
  return { catalog, scans };
}

const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 10; i++) await Promise.resolve();
  return done;
};

describe('ModelCatalog.rescan', () => {
  it('a call during a running scan waits for a scan that starts after it (read-your-writes)', async () => {
    const { catalog, scans } = catalogWithScriptedScans();
    const first = catalog.rescan();
    expect(scans).toHaveLength(1);
    // A model directory renamed into place now may have been missed by the running scan.
    const second = catalog.rescan();
    const third = catalog.rescan();
    expect(scans).toHaveLength(1);
    scans[0].resolve();
    await first;
    expect(await settled(second)).toBe(false);
    await Promise.resolve();
    await Promise.resolve();
    expect(scans).toHaveLength(2); // one more scan, shared by the second and third calls
    scans[1].resolve();
    await Promise.all([second, third]);
    expect(scans).toHaveLength(2);
  });

  it('a failed scan still runs the queued one; with no scan running a call starts one at once', async () => {
    const { catalog, scans } = catalogWithScriptedScans();
    const first = catalog.rescan();
    const second = catalog.rescan();
    scans[0].reject(new Error('EIO'));
    await expect(first).rejects.toThrow('EIO');
    await new Promise((r) => setImmediate(r));
    scans[1].resolve();
    await second;
    const third = catalog.rescan();
    expect(scans).toHaveLength(3);
    scans[2].resolve();
    await third;
  });
});
