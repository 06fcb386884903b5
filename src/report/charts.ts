/**
 * Charts for the results report: a Vega-Lite spec → Vega → SVG (vega's headless View, no canvas
 * and no native module) → PNG (sharp, which the project already uses for images).
 *
 * vega and vega-lite ship ES modules only, with top-level await, which this CommonJS build cannot
 * require(); they are reached through a real dynamic import(). TypeScript (module commonjs) would
 * rewrite `import()` into require(), hence the Function wrapper.
 */
import sharp from 'sharp';

const nativeImport = new Function('specifier', 'return import(specifier)') as (
  specifier: string,
) => Promise<unknown>;

/**
 * Under the test runner, modules run in a vm context where a Function-made import() has no
 * loader (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING); there the plain import() expression is the
 * runner's own, which loads ES modules.
 */
async function esmImport(specifier: string): Promise<unknown> {
  try {
    return await nativeImport(specifier);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING') throw e;
    return import(specifier);
  }
}

interface VegaModule {
  parse(spec: unknown): unknown;
  View: new (
    runtime: unknown,
    opts: { renderer: 'none' },
  ) => { toSVG(scale?: number): Promise<string> };
}
interface VegaLiteModule {
  compile(spec: unknown): { spec: unknown };
}

let modules: Promise<{ vega: VegaModule; vl: VegaLiteModule }> | undefined;
function load(): Promise<{ vega: VegaModule; vl: VegaLiteModule }> {
  modules ??= Promise.all([esmImport('vega'), esmImport('vega-lite')]).then(([vega, vl]) => ({
    vega: vega as VegaModule,
    vl: vl as VegaLiteModule,
  }));
  return modules;
}

/** A Vega-Lite spec (typed loosely: the report builds a handful of them). */
export type VlSpec = Record<string, unknown>;

/** SVG text of a Vega-Lite spec. */
export async function chartSvg(spec: VlSpec): Promise<string> {
  const { vega, vl } = await load();
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** PNG bytes of a Vega-Lite spec (rendered at `density` DPI, 144 = 2× the SVG's pixels). */
export async function chartPng(spec: VlSpec, density = 144): Promise<Buffer> {
  const svg = await chartSvg(spec);
  return sharp(Buffer.from(svg), { density }).flatten({ background: '#ffffff' }).png().toBuffer();
}

/** Title and subtitle naming what made the figure: every figure carries its recipe and commit. */
export function provenanceTitle(title: string, source: string, commit: string): VlSpec {
  return {
    text: title,
    subtitle: `${source} · commit ${commit.slice(0, 10)}`,
    anchor: 'start',
    subtitleColor: '#555',
  };
}
