/**
 * Device selection for ONNX Runtime sessions: PRG_DEVICE=cpu|cuda.
 *
 * `cuda` asks for execution providers ['cuda', 'cpu'] (the onnxruntime-node docs: providers are
 * tried in order and nodes CUDA cannot run stay on CPU). onnxruntime-node ships the CUDA provider
 * as separate shared libraries fetched at install time; where they are absent (no GPU, or the
 * install step skipped) session creation with 'cuda' throws "Failed to load shared library".
 * We then run on CPU and say so once per process, so a missing GPU never crashes a job.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export type Device = 'cpu' | 'cuda';

/** Parse a device name (PRG_DEVICE); unset or empty means 'cpu'. */
export function parseDevice(value: string | undefined, source = 'PRG_DEVICE'): Device {
  if (value === undefined || value.trim() === '') return 'cpu';
  const v = value.trim().toLowerCase();
  if (v === 'cpu' || v === 'cuda') return v;
  throw new Error(`${source}=${JSON.stringify(value)} is not a device; use one of: cpu, cuda`);
}

export function deviceFromEnv(env: NodeJS.ProcessEnv = process.env): Device {
  return parseDevice(env.PRG_DEVICE);
}

/** Parse an intra-op thread count (PRG_THREADS); unset or empty means 0 (ORT default). */
export function parseThreads(value: string | undefined, source = 'PRG_THREADS'): number {
  if (value === undefined || value.trim() === '') return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(
      `${source}=${JSON.stringify(value)} is not a thread count; use an integer >= 0 (0 = one per core)`,
    );
  return n;
}

export function threadsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  return parseThreads(env.PRG_THREADS);
}

/** The execution providers ORT is asked for, in priority order. */
export function executionProviders(device: Device): string[] {
  return device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'];
}

/**
 * Where onnxruntime-node looks for its CUDA provider: next to its native binding
 * (bin/napi-v*\/linux/x64/libonnxruntime_providers_cuda.so). Returns undefined when the binding
 * itself cannot be located.
 */
export function cudaProviderLibrary(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  let pkgDir: string;
  try {
    pkgDir = dirname(require.resolve('onnxruntime-node/package.json'));
  } catch {
    return undefined;
  }
  for (const napi of ['napi-v6', 'napi-v3']) {
    const dir = join(pkgDir, 'bin', napi, process.platform, process.arch);
    if (existsSync(join(dir, 'onnxruntime_binding.node')))
      return join(dir, 'libonnxruntime_providers_cuda.so');
  }
  return undefined;
}

/**
 * Whether the CUDA provider library is installed. Checked before asking ORT, because a failed
 * attempt makes ORT print a native error line to stderr on every session.
 */
export function cudaProviderInstalled(): boolean {
  const lib = cudaProviderLibrary();
  return lib !== undefined && existsSync(lib);
}

export type Warn = (message: string) => void;

let warn: Warn = (m) => process.emitWarning(m, { code: 'PRG_CUDA_FALLBACK' });
let warned = false;

/** Route the CPU-fallback warning elsewhere (a logger; tests). Returns the previous sink. */
export function setDeviceWarningSink(sink: Warn): Warn {
  const prev = warn;
  warn = sink;
  return prev;
}

/** Forget that the fallback warning was given (tests only). */
export function resetDeviceWarning(): void {
  warned = false;
}

/** Log the CUDA → CPU fallback, once per process. */
export function warnCpuFallback(reason: string): void {
  if (warned) return;
  warned = true;
  warn(
    `PRG_DEVICE=cuda but the CUDA execution provider is unavailable (${reason}); running on CPU. ` +
      'Install the CUDA 12 provider (npm install onnxruntime-node --onnxruntime-node-install=cuda12) ' +
      'or set PRG_DEVICE=cpu to silence this warning.',
  );
}
