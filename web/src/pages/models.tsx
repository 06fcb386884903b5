/** The model registry: classes, input, solver, metrics with their commands, OOD thresholds. */
import { getJson } from '../api';
import type { Model, ModelList } from '../types';
import { ErrorMessage, fmt, useLoad } from '../ui';

function ModelCard({ m }: { m: Model }) {
  const hid = `model-${m.id.replace(/\W+/g, '-')}`;
  const ood = m.ood;
  return (
    <article class="card" aria-labelledby={hid}>
      <header class="card-head">
        <h2 id={hid}>{m.id}</h2>
        {m.isDefault && <span class="badge">default</span>}
        {m.loadError && <span class="badge bad">failed to load</span>}
        <a class="button" href={`#/try?model=${encodeURIComponent(m.id)}`}>
          Try {m.id}
        </a>
      </header>
      {m.description && <p>{m.description}</p>}
      {m.loadError && <p class="error">{m.loadError}</p>}
      <dl class="facts">
        <dt>Input</dt>
        <dd>
          {m.input.channels}×{m.input.height}×{m.input.width}
        </dd>
        <dt>Interpolant</dt>
        <dd>{m.interpolant}</dd>
        <dt>Solver</dt>
        <dd>
          {m.solver.name}, {m.solver.steps} steps to t* = {m.solver.tStar}
        </dd>
        <dt>Classes ({m.classes.length})</dt>
        <dd>{m.classes.join(', ')}</dd>
      </dl>
      <h3>Metrics</h3>
      {Object.keys(m.metrics).length === 0 ? (
        <p class="muted">No recorded metrics.</p>
      ) : (
        <div class="scroll" tabIndex={0} role="region" aria-label={`${m.id} metrics`}>
          <table>
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">Value</th>
                <th scope="col">n</th>
                <th scope="col">Command</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(m.metrics).map(([name, r]) => (
                <tr key={name}>
                  <th scope="row">{name}</th>
                  <td>{fmt(r.value)}</td>
                  <td>{r.n}</td>
                  <td>
                    <code>{r.command}</code>
                    {r.measuredAt && <span class="muted"> ({r.measuredAt.slice(0, 10)})</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h3>OOD thresholds</h3>
      {!ood ? (
        <p class="muted">No OOD thresholds: the model flags nothing.</p>
      ) : (
        <div class="scroll" tabIndex={0} role="region" aria-label={`${m.id} OOD thresholds`}>
          <table>
            <thead>
              <tr>
                <th scope="col">Score</th>
                <th scope="col">Threshold</th>
                <th scope="col">TPR</th>
                <th scope="col">In distribution when</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(ood.scores).map(([name, t]) => (
                <tr key={name}>
                  <th scope="row">
                    {name}
                    {name === ood.primary && <span class="badge">primary</span>}
                  </th>
                  <td>{fmt(t.threshold)}</td>
                  <td>{fmt(t.tpr, 3)}</td>
                  <td>{t.higherIsInDistribution ? 'score ≥ threshold' : 'score ≤ threshold'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </article>
  );
}

export function ModelsPage() {
  const list = useLoad(() => getJson<ModelList>('/models'), []);
  return (
    <>
      <h1>Models</h1>
      <ErrorMessage error={list.error} />
      {list.loading && !list.data && <p aria-live="polite">Loading models…</p>}
      {list.data && list.data.models.length === 0 && <p>No servable models under MODELS_DIR.</p>}
      {list.data?.models.map((m) => (
        <ModelCard key={m.id} m={m} />
      ))}
    </>
  );
}
