/** Time left for a job from its progress fraction (0..1) at two moments. */
export interface ProgressSample {
  /** ms since the epoch */
  at: number;
  progress: number;
}

/** ms left at the mean rate between `from` and `now`; null until progress has moved. */
export function remainingMs(from: ProgressSample, now: ProgressSample): number | null {
  const dp = now.progress - from.progress;
  const dt = now.at - from.at;
  if (!(dp > 0) || !(dt > 0)) return null;
  return Math.max(0, ((1 - now.progress) * dt) / dp);
}

/** "45 s", "3 min 05 s", "2 h 07 min" */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}
