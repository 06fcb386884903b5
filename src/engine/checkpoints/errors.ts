/** Every reader failure is a CheckpointError naming the file and what is wrong with it. */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${problem}`, options);
    this.name = 'CheckpointError';
  }
}
