/**
 * Per-image results that do not change during a run, keyed by dataset index: the frozen VAE
 * encoder's latents (frozen-encoder.ts) and the frozen flow's x_{t*} in a head-only phase
 * (finetune.ts). Without augmentation an image always gives the same row, so it is computed
 * once per run instead of once per epoch.
 *
 * Bounded by bytes: past the budget, rows are no longer stored (they are computed each time, as
 * without a cache), so a large training set cannot exhaust the process's memory. The default,
 * 512 MiB, holds the x_{t*} of all 60 000 MNIST images (784 floats each, 188 MB) or 32 768
 * SD-VAE latents of 256×256 images (16 KiB each).
 */
export const ROW_CACHE_DEFAULT_BYTES = 512 * 2 ** 20;

export class RowCache {
  private readonly rows = new Map<number, Float32Array>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    /** Floats per row. */
    readonly rowSize: number,
    readonly maxBytes = ROW_CACHE_DEFAULT_BYTES,
  ) {}

  get size(): number {
    return this.rows.size;
  }

  /** The row of `index` (counted as a hit), or undefined (counted as a miss). */
  get(index: number): Float32Array | undefined {
    const r = this.rows.get(index);
    if (r) this.hits++;
    else this.misses++;
    return r;
  }

  /** Rows of every index of a batch, [n, rowSize], when all are cached; else undefined. */
  gather(indices: ArrayLike<number>): Float32Array | undefined {
    const n = indices.length;
    for (let i = 0; i < n; i++)
      if (!this.rows.has(indices[i])) {
        this.misses += n;
        return undefined;
      }
    const out = new Float32Array(n * this.rowSize);
    for (let i = 0; i < n; i++) out.set(this.rows.get(indices[i])!, i * this.rowSize);
    this.hits += n;
    return out;
  }

  /** Keeps a copy of `row` for `index` while the budget allows. */
  set(index: number, row: Float32Array): void {
    if (row.length !== this.rowSize)
      throw new Error(`row cache: a row of ${row.length} floats, expected ${this.rowSize}`);
    if (this.rows.has(index) || this.bytes + row.byteLength > this.maxBytes) return;
    this.rows.set(index, row.slice());
    this.bytes += row.byteLength;
  }

  /** Stores the rows of a batch ([n, rowSize] in `data`, row i for indices[i]). */
  setBatch(indices: ArrayLike<number>, data: Float32Array): void {
    for (let i = 0; i < indices.length; i++)
      this.set(indices[i], data.subarray(i * this.rowSize, (i + 1) * this.rowSize));
  }

  clear(): void {
    this.rows.clear();
    this.bytes = 0;
  }
}
