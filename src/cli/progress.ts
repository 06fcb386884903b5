/**
 * Training progress for the terminal (cli-progress bar on stderr: ETA, img/s, loss) and a JSONL
 * metric log (`--log file`: one JSON object per step and per epoch, appended).
 *
 * Recipes and ablations run many trainings into one log; each step and epoch line carries the
 * stage it belongs to (stage, and for ablations variant, seed, candidate, interpolant), so the
 * report (src/report/inputs.ts readCurves) draws one curve per stage. Logs written before these
 * fields existed have none of them, and the report still reads them.
 */
import { appendFileSync } from 'node:fs';
import { SingleBar } from 'cli-progress';
import type { StageEvent, StageUnit } from '../prg/recipes/run';
import { EpochProgress, StepProgress } from '../prg/training/common';

export class TrainingReporter {
  private bar: SingleBar | null = null;
  private imgPerSec = 0;
  /** The stage in progress (recipes): added to every step and epoch line. */
  private context: ({ stage: string } & StageUnit) | null = null;

  constructor(private readonly o: { log?: string; quiet?: boolean; stream?: NodeJS.WriteStream }) {}

  private write(rec: Record<string, unknown>): void {
    if (this.o.log)
      appendFileSync(this.o.log, JSON.stringify({ time: new Date().toISOString(), ...rec }) + '\n');
  }

  step(p: StepProgress): void {
    // Smoothed throughput: a single step's time is noisy on a shared machine.
    this.imgPerSec = this.imgPerSec ? 0.9 * this.imgPerSec + 0.1 * p.imgPerSec : p.imgPerSec;
    this.write({ event: 'step', ...p, ...this.context });
    if (this.o.quiet) return;
    const stream = this.o.stream ?? process.stderr;
    if (!this.bar) {
      this.bar = new SingleBar({
        format:
          '{phase} epoch {ep}/{epochs} |{bar}| {value}/{total} steps | ETA {eta_formatted} | {ips} img/s | loss {loss}',
        stream,
        hideCursor: false,
        etaBuffer: 50,
        fps: 5,
        noTTYOutput: false,
      });
      this.bar.start(p.totalSteps, p.globalStep - 1, this.payload(p));
    }
    this.bar.update(p.globalStep, this.payload(p));
  }

  private payload(p: StepProgress) {
    return {
      phase: p.phase,
      ep: p.epoch + 1,
      epochs: p.epochs,
      ips: this.imgPerSec.toFixed(1),
      loss: p.loss.toFixed(4),
    };
  }

  epoch(p: EpochProgress): void {
    this.write({ event: 'epoch', ...p, ...this.context });
    if (this.o.quiet) return;
    const stream = this.o.stream ?? process.stderr;
    if (!stream.isTTY) {
      const m = Object.entries(p.metrics)
        .map(([k, v]) => ` ${k} ${v.toFixed(4)}`)
        .join('');
      stream.write(
        `${p.phase} epoch ${p.epoch + 1}/${p.epochs}: mean loss ${p.meanLoss.toFixed(4)}${m} ` +
          `(${p.seconds.toFixed(1)} s, ${this.imgPerSec.toFixed(1)} img/s)\n`,
      );
    }
  }

  /** A recipe stage starts, is skipped or ends: logged, and the context of the steps that follow. */
  stage(e: StageEvent): void {
    this.write({ event: 'stage', ...e });
    const { stage, variant, seed, candidate, interpolant } = e;
    // Unset fields are undefined, which JSON.stringify leaves out of the lines.
    this.context = e.status === 'start' ? { stage, variant, seed, candidate, interpolant } : null;
  }

  event(rec: Record<string, unknown>): void {
    this.write(rec);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
