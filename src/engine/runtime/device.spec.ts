import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../onnx/builder';
import { tensor } from '../onnx/types';
import { existsSync } from 'node:fs';
import {
  cudaProviderInstalled,
  cudaProviderLibrary,
  executionProviders,
  parseDevice,
  parseThreads,
  resetDeviceWarning,
  setDeviceWarningSink,
  Warn,
} from './device';
import { GraphSession, resolveSessionOptions, setCudaProbe } from './session';

function reluGraph() {
  const b = new GraphBuilder('relu');
  b.output(b.relu(b.input('x', [3])), 'y');
  return b.build();
}

describe('device selection', () => {
  it('parses PRG_DEVICE and rejects anything else by name', () => {
    expect(parseDevice(undefined)).toBe('cpu');
    expect(parseDevice('')).toBe('cpu');
    expect(parseDevice('CUDA')).toBe('cuda');
    expect(() => parseDevice('gpu')).toThrow(
      /PRG_DEVICE="gpu" is not a device; use one of: cpu, cuda/,
    );
    expect(() => resolveSessionOptions({}, { PRG_DEVICE: 'tpu' })).toThrow(/PRG_DEVICE="tpu"/);
    expect(resolveSessionOptions({}, { PRG_DEVICE: 'cuda', PRG_THREADS: '2' })).toMatchObject({
      device: 'cuda',
      threads: 2,
    });
    expect(resolveSessionOptions({ threads: 1 }, { PRG_THREADS: '2' }).threads).toBe(1);
    expect(resolveSessionOptions({}, {}).spin).toBe(false);
    expect(resolveSessionOptions({}, { PRG_ORT_SPIN: '1' }).spin).toBe(true);
    expect(() => resolveSessionOptions({}, { PRG_ORT_SPIN: 'yes' })).toThrow(/PRG_ORT_SPIN/);
    expect(resolveSessionOptions({}, {}).prepack).toBe(true);
    expect(resolveSessionOptions({}, { PRG_ORT_PREPACK: '0' }).prepack).toBe(false);
    expect(() => resolveSessionOptions({}, { PRG_ORT_PREPACK: 'no' })).toThrow(/PRG_ORT_PREPACK/);
    expect(resolveSessionOptions({}, {})).toMatchObject({ cpuArena: true, memPattern: true });
    expect(
      resolveSessionOptions({}, { PRG_ORT_CPU_ARENA: '0', PRG_ORT_MEM_PATTERN: '0' }),
    ).toMatchObject({ cpuArena: false, memPattern: false });
    expect(resolveSessionOptions({ cpuArena: true }, { PRG_ORT_CPU_ARENA: '0' }).cpuArena).toBe(
      true,
    );
    expect(() => resolveSessionOptions({}, { PRG_ORT_MEM_PATTERN: 'off' })).toThrow(
      /PRG_ORT_MEM_PATTERN/,
    );
  });

  it('parses PRG_THREADS', () => {
    expect(parseThreads(undefined)).toBe(0);
    expect(parseThreads('3')).toBe(3);
    expect(() => parseThreads('-1')).toThrow(/PRG_THREADS="-1"/);
    expect(() => parseThreads('two')).toThrow(/not a thread count/);
  });

  it('asks for cuda then cpu', () => {
    expect(executionProviders('cuda')).toEqual(['cuda', 'cpu']);
    expect(executionProviders('cpu')).toEqual(['cpu']);
  });
});

describe('CUDA fallback (this machine has no CUDA provider)', () => {
  let warnings: string[];
  let prevSink: Warn;
  beforeEach(() => {
    warnings = [];
    prevSink = setDeviceWarningSink((m) => warnings.push(m));
    resetDeviceWarning();
  });
  afterEach(() => {
    setDeviceWarningSink(prevSink);
    resetDeviceWarning();
  });

  it('runs on CPU and warns once when the provider library is absent', async () => {
    const prev = setCudaProbe(() => false);
    try {
      for (let i = 0; i < 2; i++) {
        const s = await GraphSession.create(reluGraph(), { device: 'cuda', threads: 1 });
        expect(s.device).toBe('cpu');
        const y = await s.run({ x: tensor('float32', [3], [-1, 0, 2]) });
        expect(Array.from(y.y.data as Float32Array)).toEqual([0, 0, 2]);
        await s.release();
      }
    } finally {
      setCudaProbe(prev);
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/PRG_DEVICE=cuda .* unavailable .* running on CPU/);
  });

  it('falls back when ORT itself fails to load the provider', async () => {
    // Pretend the library is installed: ORT then tries to load it, fails, and we retry on CPU.
    // ORT prints its own red "Failed to load library" line to stderr here: expected.
    const prev = setCudaProbe(() => true);
    try {
      const s = await GraphSession.create(reluGraph(), { device: 'cuda', threads: 1 });
      expect(s.device).toBe('cpu');
      const y = await s.run({ x: tensor('float32', [3], [1, -2, 3]) });
      expect(Array.from(y.y.data as Float32Array)).toEqual([1, 0, 3]);
      await s.release();
    } finally {
      setCudaProbe(prev);
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/ORT could not start it/);
  });
});

describe('CUDA provider probe', () => {
  it('looks for the provider next to the onnxruntime-node binding', () => {
    const lib = cudaProviderLibrary();
    expect(lib).toMatch(
      /onnxruntime-node\/bin\/napi-v\d\/linux\/x64\/libonnxruntime_providers_cuda\.so$/,
    );
    // The answer must agree with the file system (true on a CUDA install, false here).
    expect(cudaProviderInstalled()).toBe(existsSync(lib!));
  });
});
