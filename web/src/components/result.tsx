/** One image's classification: the label, top-K probability bars, the OOD score against its threshold. */
import type { Classification, Model } from '../types';
import { fmt, pct } from '../ui';

export function TopKBars({ topK, id }: { topK: Classification['topK']; id: string }) {
  return (
    <ol class="bars" aria-labelledby={`${id}-topk`}>
      {topK.map((p) => (
        <li key={p.label}>
          <span class="bar-label">{p.label}</span>
          <span class="bar-track" aria-hidden="true">
            <span class="bar-fill" style={{ width: pct(p.probability) }} />
          </span>
          <span class="bar-value">{pct(p.probability)}</span>
        </li>
      ))}
    </ol>
  );
}

/**
 * The primary OOD score on a scale with the threshold marked; the side of the threshold that
 * counts as out of distribution is shaded.
 */
export function OodGauge({
  ood,
  model,
}: {
  ood: NonNullable<Classification['ood']>;
  model: Model;
}) {
  const t = model.ood?.scores[ood.name];
  if (!t) return <p>{`${ood.name} score ${fmt(ood.score)} (no threshold recorded)`}</p>;
  const lo = Math.min(ood.score, t.threshold);
  const hi = Math.max(ood.score, t.threshold);
  const pad = Math.max((hi - lo) * 0.25, Math.abs(t.threshold) * 0.05, 1e-6);
  const at = (v: number) => `${(100 * (v - lo + pad)) / (hi - lo + 2 * pad)}%`;
  const when = t.higherIsInDistribution ? '≥' : '≤';
  return (
    <div class="ood">
      <p>
        <span class={ood.flagged ? 'badge bad' : 'badge ok'}>
          {ood.flagged ? 'Flagged: out of distribution' : 'In distribution'}
        </span>{' '}
        {ood.name} = <strong>{fmt(ood.score)}</strong>, threshold {fmt(t.threshold)} (in
        distribution when score {when} threshold)
      </p>
      <div class="gauge" aria-hidden="true">
        <span
          class="gauge-ood"
          style={
            t.higherIsInDistribution
              ? { left: 0, width: at(t.threshold) }
              : { left: at(t.threshold), right: 0 }
          }
        />
        <span class="gauge-threshold" style={{ left: at(t.threshold) }} title="threshold" />
        <span
          class={ood.flagged ? 'gauge-score bad' : 'gauge-score'}
          style={{ left: at(ood.score) }}
        />
      </div>
    </div>
  );
}
