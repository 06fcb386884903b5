/**
 * The serving path's one session cache: ORT sessions of a loaded model, keyed by the setting they
 * were built for (solver, steps, t, pool, batch size). A graph is built and its session created on
 * the first run of its key (concurrent first runs share the creation); when `maxGraphs` sessions
 * exist, the least recently used idle one is released before a new one is made, so memory follows
 * the settings clients actually use.
 */
import { SessionOptions, GraphSession, Feeds } from '../engine/runtime/session';
import { Graph } from '../engine/onnx/types';

interface Entry {
  session: Promise<GraphSession>;
  busy: number;
  lastUsed: number;
}

export class GraphCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly session: SessionOptions,
    private readonly maxGraphs = 16,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Run the graph cached under `key`, building it with `make` on first use. */
  async run(key: string, make: () => Graph, feeds: Feeds): Promise<Feeds> {
    let e = this.entries.get(key);
    if (!e) {
      await this.evictIdle();
      const created: Entry = {
        session: GraphSession.create(make(), this.session),
        busy: 0,
        lastUsed: 0,
      };
      this.entries.set(key, created);
      // A failed creation must not poison the key: the next run retries.
      created.session.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
      e = created;
    }
    e.busy++;
    e.lastUsed = Date.now();
    try {
      return await (await e.session).run(feeds);
    } finally {
      e.busy--;
    }
  }

  private async evictIdle(): Promise<void> {
    while (this.entries.size >= this.maxGraphs) {
      const idle = [...this.entries].filter(([, e]) => e.busy === 0);
      if (!idle.length) return;
      idle.sort((a, b) => a[1].lastUsed - b[1].lastUsed);
      const [key, e] = idle[0];
      this.entries.delete(key);
      await (await e.session.catch(() => null))?.release();
    }
  }

  /** Release every session (the model is being unloaded). */
  async clear(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map(async (e) => (await e.session.catch(() => null))?.release()));
  }
}
