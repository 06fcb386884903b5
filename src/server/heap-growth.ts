/**
 * The serving process's JS heap growth. Under steady request load almost every object a request
 * makes (JSON bodies, base64 strings, decoded images, response arrays) dies young, but a few per
 * request survive two scavenges and are promoted; with V8's default rule the old generation may
 * then grow to about twice its live size before a major collection, so RSS rides a saw-tooth of
 * 30–40 % of the process (docs/reliability.md, "Soak"). A smaller growing factor runs major GCs
 * sooner — more often, on a smaller heap — and keeps the process within a few per cent of its
 * baseline at the cost of some GC time.
 *
 * V8 reads the flag whenever it sets the next heap limit, so setting it at start-up, before the
 * app allocates, works like `node --heap-growing-percent=N` (which NODE_OPTIONS does not accept).
 */
import { setFlagsFromString } from 'node:v8';

/** Applies HEAP_GROWING_PERCENT (config.heapGrowingPercent); 0 leaves V8's default rule. */
export function applyHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${Math.round(percent)}`);
}
