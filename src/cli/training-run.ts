/**
 * The shared shell of the long-running CLI commands (pretrain, finetune): progress reporting,
 * the JSONL log, Ctrl-C turned into a resumable checkpoint (exit 130), and the final summary.
 */
import type { StageEvent } from '../prg/recipes/run';
import { EpochProgress, StepProgress, TrainingAborted } from '../prg/training/common';
import { Values, flag, str } from './args';
import { interruptSignal } from './common';
import { TrainingReporter } from './progress';

export interface TrainingHooks {
  signal: AbortSignal;
  onStep: (p: StepProgress) => void;
  onEpoch: (p: EpochProgress) => void;
  /** A new phase begins (recipes): the next step starts a fresh progress bar. */
  newPhase: () => void;
  /** A recipe stage starts, is skipped or ends: logged, and tagged on the steps that follow. */
  logStage: (e: StageEvent) => void;
}

export async function runTrainingCommand<R extends object>(
  command: string,
  v: Values,
  options: object,
  train: (hooks: TrainingHooks) => Promise<R>,
  summary: (res: R) => string,
): Promise<number> {
  const reporter = new TrainingReporter({ log: str(v, 'log'), quiet: flag(v, 'quiet') });
  const intr = interruptSignal();
  reporter.event({ event: 'start', command, options });
  try {
    const res = await train({
      signal: intr.signal,
      onStep: (p) => reporter.step(p),
      onEpoch: (p) => reporter.epoch(p),
      newPhase: () => reporter.stop(),
      logStage: (e) => reporter.stage(e),
    });
    reporter.stop();
    reporter.event({ event: 'done', ...res });
    process.stdout.write(flag(v, 'json') ? JSON.stringify(res) + '\n' : summary(res) + '\n');
    return 0;
  } catch (e) {
    reporter.stop();
    if (e instanceof TrainingAborted) {
      reporter.event({ event: 'interrupted', checkpoint: e.checkpoint, step: e.globalStep });
      process.stderr.write(`${e.message} (rerun the same command with --resume)\n`);
      return 130;
    }
    throw e;
  } finally {
    intr.dispose();
  }
}
