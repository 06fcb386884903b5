/**
 * Dataset upload limits and storage, from the environment (validated like ServerConfig: every bad
 * variable is reported, with its name, value and what was expected).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../config/config';
import { Env, envInt } from '../config/env';

export interface DatasetsConfig {
  /** Where validated datasets live: DATA_DIR/<id>/ (default ./data/datasets). */
  dataDir: string;
  /** Where multer writes uploads while a request is handled (removed on every path). */
  uploadTmpDir: string;
  /** Largest uploaded file (zip or IDX file), bytes. */
  maxUploadBytes: number;
  /** Most entries (files and folders) in a zip. */
  maxEntries: number;
  /** Largest total uncompressed size of a zip's entries (declared and actually inflated), bytes. */
  maxUncompressedBytes: number;
  /**
   * Largest uncompressed/compressed ratio of an entry (checked for entries ≥ 64 KiB, where a high
   * ratio matters) and of the whole archive. PNG/JPEG/WebP are already compressed: real datasets sit
   * near 1.
   */
  maxCompressionRatio: number;
  /** Decoded pixel cap per image (width × height). */
  maxPixels: number;
}

export function loadDatasetsConfig(env: Env = process.env, cwd = process.cwd()): DatasetsConfig {
  const problems: string[] = [];
  const int = envInt(env, problems);
  const config: DatasetsConfig = {
    dataDir: path.resolve(cwd, env.DATA_DIR?.trim() || 'data/datasets'),
    uploadTmpDir: path.resolve(env.UPLOAD_TMP_DIR?.trim() || path.join(os.tmpdir(), 'prg-uploads')),
    maxUploadBytes: int('DATASET_MAX_UPLOAD_BYTES', 512 * 1024 * 1024, 1024, 2 ** 40),
    maxEntries: int('DATASET_MAX_ENTRIES', 200_000, 2, 10_000_000),
    maxUncompressedBytes: int('DATASET_MAX_UNCOMPRESSED_BYTES', 2 * 1024 ** 3, 1024, 2 ** 42),
    maxCompressionRatio: int('DATASET_MAX_RATIO', 100, 2, 100_000),
    maxPixels: int('DATASET_MAX_PIXELS', 4096 * 4096, 1, 2 ** 30),
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}
