/** Training curves: loss per optimizer step from the logs beside each results file. */
import { basename } from 'node:path';
import { provenanceTitle } from './charts';
import { NOT_RUN, short, slug } from './format';
import { CurvePoint, ReportInput, readCurves, strOr } from './inputs';
import { Report } from './writer';

export async function curvesSection(r: Report, runs: ReportInput[]): Promise<void> {
  r.add('## Training curves');
  r.add(
    'Loss per optimizer step from the training log beside each results file: flow-matching pretraining and fine-tuning in separate panels, one line per stage (ablations: per variant, seed and learning-rate candidate; logs written before stages were tagged: per restart of the step count).',
  );
  let any = false;
  for (const inp of runs) {
    if (!inp.logs.length) continue;
    const pts: CurvePoint[] = await readCurves(inp.logs);
    if (!pts.length) continue;
    any = true;
    const name = strOr(inp.json.recipe, basename(inp.dir));
    const series = [...new Set(pts.map((p) => p.series))];
    await r.figure(
      `curves-${slug(name)}`,
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: provenanceTitle(`Training loss: ${name}`, `recipe ${name}`, strOr(inp.json.commit)),
        data: { values: pts },
        facet: {
          row: {
            field: 'phase',
            type: 'nominal',
            sort: ['pretrain', 'finetune'],
            header: {
              labelExpr:
                "datum.value === 'pretrain' ? 'pretraining (flow matching)' : 'fine-tuning'",
              title: null,
            },
          },
        },
        spec: {
          mark: { type: 'line', strokeWidth: 1, clip: true },
          encoding: {
            x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
            y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
            color: {
              field: 'series',
              type: 'nominal',
              title: 'stage',
              sort: series,
              scale: { scheme: series.length > 10 ? 'tableau20' : 'tableau10' },
              legend: { labelLimit: 400, symbolLimit: 0 },
            },
          },
          width: 480,
          height: 200,
        },
        resolve: { scale: { x: 'independent', y: 'independent', color: 'independent' } },
      },
      `Training loss per step of recipe ${name}, commit ${short(inp.json.commit)}, ${series.length} stage(s) (from ${inp.logs.map((l) => basename(l)).join(', ')}).`,
    );
  }
  if (!any)
    r.add(
      `${NOT_RUN}: no training log beside any results file (run recipes with \`--log DIR/log.jsonl\`).`,
    );
}
