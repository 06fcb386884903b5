/** Options and process plumbing shared by the `prg` commands. */
import { Device } from '../engine/runtime/device';
import { OptionSpec, Values, choice, num } from './args';

export const COMMON: OptionSpec = {
  threads: { type: 'string' },
  device: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export function session(v: Values): { threads?: number; device?: Device } {
  return {
    threads: num(v, 'threads', { int: true, min: 0 }),
    device: choice(v, 'device', ['cpu', 'cuda'] as const),
  };
}

/** First Ctrl-C aborts the run (which checkpoints and exits 130); a second one exits at once. */
export function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const ctl = new AbortController();
  const onInt = () => {
    if (ctl.signal.aborted) process.exit(130);
    process.stderr.write('\ninterrupted: writing a checkpoint (Ctrl-C again to quit now)\n');
    ctl.abort();
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onInt);
  return {
    signal: ctl.signal,
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onInt);
    },
  };
}
