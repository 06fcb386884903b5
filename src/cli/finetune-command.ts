/** `prg finetune` (wired to src/prg/training/finetune-job.ts). */
import { UsageError } from './args';

export async function finetuneCommand(argv: string[]): Promise<number> {
  void argv;
  throw new UsageError('prg finetune: not available yet in this build');
}
