/**
 * Checkpoint readers (no framework code): safetensors and PyTorch's zip archives, sniffed from
 * the first bytes. `openCheckpoint` returns the file's object tree with StoredTensor leaves;
 * values are read tensor by tensor. Legacy (pre-1.6) pickles and TorchScript archives are
 * refused with what to do instead.
 */
import { promises as fs } from 'node:fs';
import { CheckpointError } from './errors';
import { openSafetensors } from './safetensors';
import { openTorchArchive } from './torch-zip';

export * from './dtypes';
export * from './errors';
export { Opaque, PickleError, unpickle } from './pickle';
export * from './safetensors';
export * from './stored-tensor';
export * from './torch-zip';

export type CheckpointFormat = 'safetensors' | 'torch-zip';

export interface CheckpointFile {
  path: string;
  format: CheckpointFormat;
  /** safetensors: a Map name → StoredTensor; torch: what torch.load returns (Maps, arrays…). */
  root: unknown;
  /** safetensors `__metadata__`, or the torch archive's version and byte order. */
  info: Record<string, string>;
  close(): Promise<void>;
}

/** Pickle protocol 2 header followed by LONG1 of torch's legacy magic number 0x1950a86a20f9469cfc6c. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8];

export async function sniffCheckpoint(path: string): Promise<CheckpointFormat> {
  let head: Uint8Array;
  let size: number;
  try {
    const fh = await fs.open(path, 'r');
    try {
      size = (await fh.stat()).size;
      head = new Uint8Array(16);
      await fh.read(head, 0, 16, 0);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new CheckpointError(path, `cannot read (${(e as Error).message})`, { cause: e });
  }
  if (size === 0) throw new CheckpointError(path, 'empty file');
  if (head[0] === 0x50 && head[1] === 0x4b) return 'torch-zip';
  if (LEGACY_MAGIC.every((b, i) => head[i] === b))
    throw new CheckpointError(
      path,
      'legacy PyTorch serialization (torch < 1.6 or _use_new_zipfile_serialization=False); ' +
        're-save it in Python with torch.save(torch.load(f), f2) and import f2',
    );
  if (head[0] === 0x80)
    throw new CheckpointError(path, 'a bare pickle, not a PyTorch zip archive or safetensors');
  if (size >= 9 && head[8] === 0x7b) return 'safetensors';
  throw new CheckpointError(
    path,
    'unknown format: neither safetensors (8-byte length + JSON header) nor a PyTorch zip archive',
  );
}

export async function openCheckpoint(path: string): Promise<CheckpointFile> {
  const format = await sniffCheckpoint(path);
  if (format === 'safetensors') {
    const f = await openSafetensors(path);
    return { path, format, root: f.tensors, info: f.metadata, close: f.close };
  }
  const a = await openTorchArchive(path);
  return {
    path,
    format,
    root: a.root,
    info: { version: String(a.version), byteorder: a.byteorder },
    close: a.close,
  };
}
