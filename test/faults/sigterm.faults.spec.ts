/**
 * SIGTERM under load, as in a rolling restart on one address: clients keep classifying while the
 * server gets SIGTERM and a new one takes its port. Readiness turns 503 first and requests are
 * still served for SHUTDOWN_DELAY_MS; then the listener closes, in-flight requests finish, and the
 * process exits when its shutdown is complete. A client that, like a load balancer, stops sending
 * once readiness says 503 and retries on connection refusal (nothing listens between the two
 * processes) sees no failed request. Clients that ignore readiness are counted apart: a request
 * whose connection was still in the kernel's accept queue when the listener closed is reset
 * without ever reaching the server (no server can prevent that; the delay window is for it).
 */
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, pngBase64, sleep, startServer, tempRoot, waitReady } from './harness';

let root: string;
let env: Record<string, string>;

beforeAll(async () => {
  ({ root, env } = await tempRoot('prg-faults-sigterm-'));
});
afterAll(async () => {
  await killAll();
  if (root) await fs.rm(root, { recursive: true, force: true });
});

/**
 * The connection failed before the request went out: refused (nothing listens), or reset while
 * connecting (a connection still in the kernel's accept queue when the listener closed: the
 * request never reached the server either). Retrying those is always safe.
 */
const refused = (e: unknown) => {
  const c = (e as { cause?: { code?: string; syscall?: string } }).cause;
  return c?.code === 'ECONNREFUSED' || c?.syscall === 'connect';
};

describe('SIGTERM under load', () => {
  it('readiness 503 before any refusal; zero failed requests for a readiness-aware retrying client', async () => {
    const DELAY_MS = 1500;
    const serverEnv = { ...env, SHUTDOWN_DELAY_MS: String(DELAY_MS), SHUTDOWN_GRACE_MS: '10000' };
    const a = await startServer(serverEnv);
    await waitReady(a);
    const body = JSON.stringify({ images: [await pngBase64(90)] });
    const t0 = Date.now();
    let stop = false;
    const stats = { ok: 0, failed: [] as string[], refusals: 0, firstRefusalAt: Infinity };
    /** Clients that ignore readiness: what they lose at the instant the listener closes. */
    const naive = { ok: 0, failed: [] as string[] };
    const timeline: { at: number; ready: number | 'refused' }[] = [];
    /** The last readiness answer, as a load balancer polling /health/ready would hold it. */
    let routable = true;

    /**
     * `lb`: sends only while readiness last said 200 (what a load balancer does with the delay
     * window) and retries on connection refusal; the others only retry on refusal.
     */
    const client = async (lb: boolean) => {
      const out = lb ? stats : naive;
      while (!stop) {
        if (lb && !routable) {
          await sleep(10);
          continue;
        }
        try {
          const r = await fetch(`${a.url}/classify`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          });
          const text = await r.text();
          if (r.status === 200) out.ok++;
          else out.failed.push(`${r.status} ${text.slice(0, 200)}`);
        } catch (e) {
          if (refused(e)) {
            stats.refusals++;
            stats.firstRefusalAt = Math.min(stats.firstRefusalAt, Date.now() - t0);
            await sleep(20); // retry on connection refused
          } else
            out.failed.push(
              `${Date.now() - t0} ms: ${String((e as { cause?: unknown }).cause ?? e)}`,
            );
        }
      }
    };
    const prober = async () => {
      while (!stop) {
        try {
          const r = await fetch(`${a.url}/health/ready`);
          await r.text();
          timeline.push({ at: Date.now() - t0, ready: r.status });
          routable = r.status === 200;
        } catch {
          timeline.push({ at: Date.now() - t0, ready: 'refused' });
          routable = false;
        }
        await sleep(25);
      }
    };
    const clients = [
      ...Array.from({ length: 8 }, () => client(true)),
      ...Array.from({ length: 2 }, () => client(false)),
      prober(),
    ];

    await sleep(1500);
    const sigtermAt = Date.now() - t0;
    a.proc.child.kill('SIGTERM');
    const exit = await a.proc.exit;
    const exitedAt = Date.now() - t0;
    // The replacement takes the same port.
    const b = await startServer(serverEnv, a.port);
    await waitReady(b);
    const okBefore = stats.ok;
    await sleep(1000);
    stop = true;
    await Promise.all(clients);

    const first503 = timeline.find((t) => t.at >= sigtermAt && t.ready === 503)?.at ?? Infinity;
    const summary = { sigtermAt, first503, exitedAt, ...stats, naive };
    console.log(`[faults] sigterm: ${JSON.stringify(summary)}`);
    // Nest re-raises the signal once its shutdown is complete ("closed" is its last hook).
    expect(exit.signal ?? exit.code).toBe('SIGTERM');
    expect(a.proc.output).toMatch(/\[Health\] .*closed/);
    expect(stats.failed).toEqual([]);
    expect(stats.ok).toBeGreaterThan(okBefore); // the new process served too
    // Readiness said 503 before anything was refused, and the delay window was kept.
    expect(first503).toBeLessThan(stats.firstRefusalAt);
    expect(stats.firstRefusalAt - sigtermAt).toBeGreaterThanOrEqual(DELAY_MS - 100);
    expect(a.proc.output).toMatch(/readiness 503, serving 1500 ms more/);
  });
});
