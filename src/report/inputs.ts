/**
 * What the report reads, found under the directories it is given (default runs/recipes/* and
 * runs/analysis/*), and read generically — the report depends on the fields listed in
 * docs/generation.md ("Report inputs"), not on the writers' types:
 *
 * - `results.json` of a recipe run (src/prg/recipes/run.ts): recipe, version, complete, commit,
 *   machine, stages.*.cpuSeconds, selection, testAccuracy; with an `ablation` block (ablation
 *   recipes): ablation.{question, metric, budget, seeds, reference, variants[].{name, label, kind,
 *   settings, runs[].{seed, testAccuracy}, testAccuracy.{mean, std, n}}};
 * - `analysis.json` of `prg analyze` (src/prg/generation/analysis.ts);
 * - `tta.json` of bench/tta.ts (TTA_OUT): kind, commit, command, machine, createdAt, lines[] (the
 *   JSON lines it prints: per side, per threshold, summary; src/report/tta.ts);
 * - `*.jsonl` training logs beside either (`--log`): lines {event: "step", phase, globalStep, loss},
 *   and since the recipe command tags them, {stage, variant?, seed?, candidate?, interpolant?}.
 */
import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';

export type Json = Record<string, unknown>;

/** The `kind` of bench/tta.ts's output file (TTA_OUT): time to accuracy against PyTorch. */
export const TTA_KIND = 'prg.tta/v1';

export interface ReportInput {
  kind: 'recipe' | 'ablation' | 'analysis' | 'tta';
  dir: string;
  file: string;
  json: Json;
  /** Training logs found beside the file. */
  logs: string[];
}

export const isObj = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
export const numOr = (v: unknown, d: number | null = null): number | null =>
  typeof v === 'number' && Number.isFinite(v) ? v : d;
export const strOr = (v: unknown, d = ''): string => (typeof v === 'string' ? v : d);

async function readJson(file: string): Promise<Json | null> {
  try {
    const v = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
    return isObj(v) ? v : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** What a results file is, by its name or its `kind` field. */
function kindOf(name: string, json: Json): ReportInput['kind'] {
  if (name === 'analysis.json' || json.kind === 'prg.analysis/v1') return 'analysis';
  if (name === 'tta.json' || json.kind === TTA_KIND) return 'tta';
  return isObj(json.ablation) ? 'ablation' : 'recipe';
}

async function inputsOfDir(dir: string): Promise<ReportInput[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const logs = names.filter((n) => n.endsWith('.jsonl')).map((n) => join(dir, n));
  const out: ReportInput[] = [];
  for (const name of ['results.json', 'analysis.json', 'tta.json']) {
    if (!names.includes(name)) continue;
    const file = join(dir, name);
    const json = await readJson(file);
    if (!json) continue;
    out.push({ kind: kindOf(name, json), dir, file, json, logs });
  }
  return out;
}

/**
 * Inputs under `paths`: a directory holding results.json / analysis.json is read itself; any
 * other directory is searched one level down (runs/recipes → runs/recipes/mnist). A file path is
 * read as a results or analysis file by its name.
 */
export async function findInputs(paths: readonly string[]): Promise<ReportInput[]> {
  const out: ReportInput[] = [];
  for (const p of paths) {
    const st = await fs.stat(p).catch(() => null);
    if (!st) continue;
    if (st.isFile()) {
      const json = await readJson(p);
      if (!json) continue;
      out.push({ kind: kindOf(basename(p), json), dir: join(p, '..'), file: p, json, logs: [] });
      continue;
    }
    const own = await inputsOfDir(p);
    if (own.length) {
      out.push(...own);
      continue;
    }
    const subs = (await fs.readdir(p, { withFileTypes: true }))
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
    for (const s of subs) out.push(...(await inputsOfDir(join(p, s))));
  }
  return out;
}

export interface CurvePoint {
  /** The legend entry: one line per stage (ablations: variant, seed and candidate). */
  series: string;
  /** The panel: pretraining (flow matching) or fine-tuning. */
  phase: 'pretrain' | 'finetune';
  step: number;
  loss: number;
}

/**
 * The legend label of a step line that names its stage (src/cli/progress.ts): ablation runs by
 * variant (or pretrained flow), seed and learning-rate candidate; recipe stages by their name.
 */
function seriesOf(rec: Json, stage: string): string {
  const variant =
    strOr(rec.variant) || (strOr(rec.interpolant) && `flow ${strOr(rec.interpolant)}`);
  const seed = numOr(rec.seed);
  const cand = numOr(rec.candidate);
  // Recipe stages (no seed, no variant) are named well enough by the stage itself.
  if (seed === null && !strOr(rec.variant)) return stage;
  return [
    variant || stage,
    seed === null ? '' : `seed ${seed}`,
    cand === null ? '' : `lr candidate ${cand}`,
  ]
    .filter(Boolean)
    .join(' · ');
}

/**
 * Loss per optimizer step from JSONL logs, one series per stage. Lines that name their stage
 * (written since the recipe command tags them) are grouped by it, so a stage resumed after a
 * stop continues its own line (a step logged twice keeps its later value). Older lines have no
 * stage: a run's phases (pretrain, each fine-tuning candidate) restart their step count, so a new
 * series starts when the phase changes or the step goes back.
 */
export async function readCurves(files: readonly string[]): Promise<CurvePoint[]> {
  const byKey = new Map<string, CurvePoint>();
  for (const f of files) {
    const text = await fs.readFile(f, 'utf8').catch(() => '');
    let phase = '';
    let last = Infinity;
    const seen: Record<string, number> = {};
    let segment = '';
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        continue;
      }
      if (!isObj(rec) || rec.event !== 'step') continue;
      const step = numOr(rec.globalStep);
      const loss = numOr(rec.loss);
      const ph = strOr(rec.phase, 'train');
      if (step === null || loss === null) continue;
      const stage = strOr(rec.stage);
      let series: string;
      if (stage) series = seriesOf(rec, stage);
      else {
        if (ph !== phase || step <= last) {
          phase = ph;
          seen[ph] = (seen[ph] ?? 0) + 1;
          segment = seen[ph] > 1 ? `${ph} #${seen[ph]}` : ph;
        }
        last = step;
        series = segment;
      }
      const panel = ph === 'pretrain' ? 'pretrain' : 'finetune';
      // Old lines: one key per point (their series already split at every restart).
      const key = stage ? `${f}\0${series}\0${panel}\0${step}` : `${byKey.size}`;
      byKey.set(key, { series, phase: panel, step, loss });
    }
  }
  return [...byKey.values()];
}
