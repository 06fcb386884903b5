/**
 * The markdown document the report is built in: text parts, and PNG figures written beside it and
 * linked relative to it. Every section module (recipes, curves, ablations, generation) writes here.
 */
import { promises as fs } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { writeFileAtomic } from '../engine/runtime/checkpoint';
import { VlSpec, chartPng } from './charts';
import { NOT_RUN } from './format';
import { Json, isObj, numOr, strOr } from './inputs';

/** Where the report goes: the markdown file (docs/RESULTS.md) and its figures (docs/results). */
export interface ReportPaths {
  out: string;
  figuresDir: string;
}

export class Report {
  readonly parts: string[] = [];
  readonly figures: string[] = [];
  constructor(private readonly o: ReportPaths) {}

  add(...lines: string[]): void {
    this.parts.push(...lines, '');
  }

  /** Render `spec` to figuresDir/name.png and link it. */
  async figure(name: string, spec: VlSpec, caption: string): Promise<void> {
    const file = this.unique(name);
    await writeFileAtomic(file, await chartPng(spec));
    this.figures.push(file);
    this.add(`![${caption}](${this.link(file)})`, `*${caption}*`);
  }

  /** Copy a PNG made by another command (sample grids) and link it. */
  async copyImage(src: string, name: string, caption: string): Promise<void> {
    const file = this.unique(name);
    const bytes = await fs.readFile(src).catch(() => null);
    if (!bytes) {
      this.add(`${caption}: image ${src} is missing (${NOT_RUN}).`);
      return;
    }
    await writeFileAtomic(file, bytes);
    this.figures.push(file);
    this.add(`![${caption}](${this.link(file)})`, `*${caption}*`);
  }

  /** figuresDir/name.png, or name-2.png, … when two inputs share a name (the same recipe twice). */
  private unique(name: string): string {
    for (let i = 1; ; i++) {
      const file = join(this.o.figuresDir, `${name}${i > 1 ? `-${i}` : ''}.png`);
      if (!this.figures.includes(file)) return file;
    }
  }

  link(file: string): string {
    return relative(join(this.o.out, '..'), file).split('\\').join('/');
  }

  /**
   * Remove the figures the previous report wrote and this one did not (a model moved to a new
   * version, a results file was removed), then record this report's list. Only names from that
   * list are ever removed, so a figures directory shared with other files keeps them.
   */
  async pruneStaleFigures(): Promise<string[]> {
    const listFile = join(this.o.figuresDir, FIGURE_LIST);
    const previous = await fs
      .readFile(listFile, 'utf8')
      .then((t) => JSON.parse(t) as unknown)
      .catch(() => []);
    const now = new Set(this.figures.map((f) => basename(f)));
    const stale = (Array.isArray(previous) ? previous : []).filter(
      (n): n is string => typeof n === 'string' && n === basename(n) && !now.has(n),
    );
    for (const n of stale) await fs.rm(join(this.o.figuresDir, n), { force: true });
    await writeFileAtomic(
      listFile,
      new TextEncoder().encode(JSON.stringify([...now].sort(), null, 2) + '\n'),
    );
    return stale;
  }
}

/** The report's own list of the figures it wrote last, beside them. */
const FIGURE_LIST = '.figures.json';

/** "2 cores AMD EPYC, 24 GiB" from a results file's machine record. */
export function machineOf(j: Json): string {
  const m = j.machine;
  if (!isObj(m)) return '—';
  return `${numOr(m.cpus) ?? '?'} cores ${strOr(m.cpu)}, ${numOr(m.memoryGiB) ?? '?'} GiB`;
}
