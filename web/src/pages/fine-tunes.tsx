/**
 * Fine-tunes: a form built from the API's own schema for POST /fine-tunes (fields, limits,
 * choices, defaults from /docs-json), the job list, and one job live from its event stream:
 * progress and ETA, loss and accuracy curves, cancel, and a link to the new model in Try it.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { getJson, postJson, streamEvents } from '../api';
import { LineChart } from '../components/chart';
import { formatDuration, remainingMs } from '../eta';
import {
  buildBody,
  Field,
  fieldsOf,
  NumberField,
  rangeText,
  requestBody,
  Values,
} from '../openapi';
import { openApi } from '../schema';
import type {
  DatasetInfo,
  FineTuneEvent,
  FineTuneJobView,
  FineTuneProgress,
  ModelList,
} from '../types';
import { ErrorMessage, fmt, pct, Route, Section, useLoad } from '../ui';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

function help(f: Field): string {
  const parts: string[] = [];
  if (f.kind === 'integer' || f.kind === 'number') {
    const r = rangeText(f);
    if (r) parts.push(`${f.kind === 'integer' ? 'integer' : 'number'} in ${r}`);
  }
  if ('default' in f && f.default !== undefined) parts.push(`default ${String(f.default)}`);
  if (f.description) parts.push(f.description);
  return parts.join(' · ');
}

/** One schema field as an input; `path` prefixes nested names (hyperparameters.epochs). */
function SchemaInput({
  f,
  path,
  values,
  set,
  options,
}: {
  f: Field;
  path: string;
  values: Values;
  set: (k: string, v: string | boolean) => void;
  options?: { value: string; label: string }[];
}) {
  const id = `f-${path.replace(/\./g, '-')}`;
  const hid = `${id}-help`;
  const h = help(f);
  const v = values[path];
  if (f.kind === 'boolean')
    return (
      <div class="field check">
        <input
          id={id}
          type="checkbox"
          checked={v === undefined ? (f.default ?? false) : v === true}
          aria-describedby={h ? hid : undefined}
          onChange={(e) => set(path, e.currentTarget.checked)}
        />
        <label for={id}>{f.name}</label>
        {h && <small id={hid}>{h}</small>}
      </div>
    );
  let input;
  if (options || f.kind === 'choice') {
    const opts = options ?? (f as { values: string[] }).values.map((x) => ({ value: x, label: x }));
    input = (
      <select
        id={id}
        required={f.required}
        aria-describedby={h ? hid : undefined}
        value={(v as string) ?? ''}
        onChange={(e) => set(path, e.currentTarget.value)}
      >
        {!f.required || !v ? (
          <option value="">
            {f.required
              ? 'choose…'
              : 'default' +
                ('default' in f && f.default !== undefined ? ` (${String(f.default)})` : '')}
          </option>
        ) : null}
        {opts.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    );
  } else if (f.kind === 'integer' || f.kind === 'number') {
    const n = f as NumberField;
    input = (
      <input
        id={id}
        type="number"
        inputMode={f.kind === 'integer' ? 'numeric' : 'decimal'}
        step={f.kind === 'integer' ? 1 : 'any'}
        min={n.min}
        max={n.max}
        required={f.required}
        placeholder={n.default !== undefined ? String(n.default) : ''}
        aria-describedby={h ? hid : undefined}
        value={(v as string) ?? ''}
        onInput={(e) => set(path, e.currentTarget.value)}
      />
    );
  } else if (f.kind === 'json') {
    input = (
      <textarea
        id={id}
        rows={4}
        aria-describedby={hid}
        value={(v as string) ?? (f.example !== undefined ? JSON.stringify(f.example) : '')}
        onInput={(e) => set(path, e.currentTarget.value)}
      />
    );
  } else {
    input = (
      <input
        id={id}
        type="text"
        required={f.required}
        aria-describedby={h ? hid : undefined}
        value={(v as string) ?? ''}
        onInput={(e) => set(path, e.currentTarget.value)}
      />
    );
  }
  return (
    <div class="field">
      <label for={id}>
        {f.name}
        {f.kind === 'json' ? ' (JSON)' : ''}
        {f.required ? ' (required)' : ''}
      </label>
      {input}
      {f.kind === 'json' ? (
        <small id={hid}>
          The API's schema does not list these fields one by one, so their limits cannot be shown;
          the server checks them and names every problem. {h}
        </small>
      ) : (
        h && <small id={hid}>{h}</small>
      )}
    </div>
  );
}

function FineTuneForm({ onCreated }: { onCreated: (job: FineTuneJobView) => void }) {
  const schema = useLoad(async () => {
    const doc = await openApi();
    return fieldsOf(doc, requestBody(doc, '/fine-tunes'));
  }, []);
  const models = useLoad(() => getJson<ModelList>('/models'), []);
  const datasets = useLoad(() => getJson<DatasetInfo[]>('/datasets'), []);
  const [values, setValues] = useState<Values>({});
  const [problems, setProblems] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const set = (k: string, v: string | boolean) => setValues((p) => ({ ...p, [k]: v }));
  // Lists (empty while loading), so these fields are selects from the first render on.
  const modelOptions = (models.data?.models ?? []).map((m) => ({
    value: m.id,
    label: `${m.id}${m.isDefault ? ' (default)' : ''}`,
  }));
  const datasetOptions = (datasets.data ?? []).map((d) => ({
    value: d.id,
    label: `${d.name} (${d.total} images, ${d.classes.length} classes)`,
  }));
  const optionsFor = (name: string) =>
    name === 'model' ? modelOptions : /dataset$/i.test(name) ? datasetOptions : undefined;
  const fields = schema.data ?? [];
  return (
    <form
      // Checked here instead of by the browser, so every problem is listed at once.
      noValidate
      onSubmit={async (e) => {
        e.preventDefault();
        const { body, problems } = buildBody(fields, values);
        setProblems(problems);
        setError(null);
        if (problems.length) return;
        setBusy(true);
        try {
          onCreated(await postJson<FineTuneJobView>('/fine-tunes', body));
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <ErrorMessage error={schema.error ?? models.error ?? datasets.error} />
      <div class="grid">
        {fields
          .filter((f) => f.kind !== 'object' && f.kind !== 'json')
          .map((f) => (
            <SchemaInput
              key={f.name}
              f={f}
              path={f.name}
              values={values}
              set={set}
              options={optionsFor(f.name)}
            />
          ))}
      </div>
      {fields
        .filter((f) => f.kind === 'object' || f.kind === 'json')
        .map((f) =>
          f.kind === 'object' ? (
            <fieldset key={f.name}>
              <legend>{f.name}</legend>
              {f.description && <p class="muted">{f.description}</p>}
              <div class="grid">
                {f.fields.map((g) => (
                  <SchemaInput
                    key={g.name}
                    f={g}
                    path={`${f.name}.${g.name}`}
                    values={values}
                    set={set}
                  />
                ))}
              </div>
            </fieldset>
          ) : (
            <SchemaInput key={f.name} f={f} path={f.name} values={values} set={set} />
          ),
        )}
      {problems.length > 0 && (
        <div class="error" role="alert">
          <ul>
            {problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        </div>
      )}
      <ErrorMessage error={error} />
      <button type="submit" disabled={busy || !schema.data}>
        Start fine-tune
      </button>
    </form>
  );
}

interface Point {
  x: number;
  loss?: number;
  ce?: number;
  fm?: number;
}

/** Folds an epoch-end report into the history, replacing a re-reported epoch (like the server). */
function upsertEpoch(
  h: FineTuneJobView['history'],
  p: FineTuneProgress,
): FineTuneJobView['history'] {
  const entry = {
    epoch: p.epoch,
    ...(p.loss !== undefined ? { loss: p.loss } : {}),
    ...(p.metrics ? { metrics: p.metrics } : {}),
  };
  return [...h.filter((e) => e.epoch !== p.epoch), entry].sort((a, b) => a.epoch - b.epoch);
}

const stepPoint = (p: FineTuneProgress): Point | null =>
  p.stepsPerEpoch > 0
    ? { x: p.epoch + p.step / p.stepsPerEpoch, loss: p.loss, ce: p.metrics?.ce, fm: p.metrics?.fm }
    : null;

function JobView({ id, onChanged }: { id: string; onChanged: () => void }) {
  const [job, setJob] = useState<FineTuneJobView | null>(null);
  const [points, setPoints] = useState<Point[]>([]);
  const [lastAt, setLastAt] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [streaming, setStreaming] = useState(false);

  useEffect(() => {
    const abort = new AbortController();
    setJob(null);
    setPoints([]);
    setError(null);
    setStreaming(true);
    streamEvents(
      `/fine-tunes/${encodeURIComponent(id)}/events`,
      ({ event, data }) => {
        if (event === 'snapshot') {
          const j = data as FineTuneJobView;
          setJob(j);
          const p = j.progress && stepPoint(j.progress);
          if (p) setPoints([p]);
          return;
        }
        const e = data as FineTuneEvent;
        setLastAt(Date.parse(e.at));
        if (e.type === 'progress') {
          const p = stepPoint(e.progress);
          if (p) setPoints((ps) => [...ps.filter((q) => q.x < p.x), p]);
          setJob(
            (j) =>
              j && {
                ...j,
                progress:
                  e.progress.stepsPerEpoch > 0
                    ? e.progress
                    : j.progress && {
                        ...j.progress,
                        progress: Math.max(j.progress.progress, e.progress.progress),
                      },
                history:
                  e.progress.stepsPerEpoch > 0 && e.progress.step < e.progress.stepsPerEpoch
                    ? j.history
                    : upsertEpoch(j.history, e.progress),
              },
          );
        } else if (e.type === 'status') {
          setJob((j) => j && { ...j, status: e.status, error: e.error ?? j.error });
          // The final view (result, finishedAt) comes from the job itself.
          if (TERMINAL.has(e.status))
            getJson<FineTuneJobView>(`/fine-tunes/${encodeURIComponent(id)}`).then(
              setJob,
              setError,
            );
          onChanged();
        }
      },
      abort.signal,
    )
      .catch((e: unknown) => setError(e))
      .finally(() => !abort.signal.aborted && setStreaming(false));
    return () => abort.abort();
  }, [id]);

  const history = job?.history ?? [];
  const lossData = useMemo(
    () => [
      points.map((p) => p.x),
      points.map((p) => p.loss ?? null),
      points.map((p) => p.ce ?? null),
      points.map((p) => p.fm ?? null),
    ],
    [points],
  );
  const accKeys = useMemo(
    () =>
      [
        ...new Set(
          history.flatMap((h) => Object.keys(h.metrics ?? {}).filter((k) => /accuracy/i.test(k))),
        ),
      ].sort(),
    [history],
  );
  const accData = useMemo(
    () => [
      history.map((h) => h.epoch + 1),
      ...accKeys.map((k) => history.map((h) => h.metrics?.[k] ?? null)),
    ],
    [history, accKeys],
  );

  if (!job)
    return (
      <>
        {error ? <ErrorMessage error={error} /> : <p aria-live="polite">Connecting to job {id}…</p>}
      </>
    );
  const p = job.progress;
  const running = !TERMINAL.has(job.status);
  const started = job.startedAt ? Date.parse(job.startedAt) : null;
  const left =
    p && started && lastAt && running
      ? remainingMs({ at: started, progress: 0 }, { at: lastAt, progress: p.progress })
      : null;
  const last = points.at(-1);
  return (
    <article class="card" aria-labelledby="job-title">
      <header class="card-head">
        <h2 id="job-title">Job {job.id}</h2>
        <span class={`badge status-${job.status}`} data-testid="job-status">
          {job.status}
        </span>
        {running && (
          <button
            type="button"
            class="danger small"
            disabled={job.status === 'cancelling'}
            onClick={async () => {
              try {
                setJob(
                  await postJson<FineTuneJobView>(
                    `/fine-tunes/${encodeURIComponent(job.id)}/cancel`,
                    {},
                  ),
                );
                onChanged();
              } catch (e) {
                setError(e);
              }
            }}
          >
            Cancel job
          </button>
        )}
      </header>
      <p>
        {job.model} on dataset <code>{job.dataset}</code>
        {job.evalDataset && (
          <>
            , evaluated on <code>{job.evalDataset}</code>
          </>
        )}{' '}
        · hyperparameters <code>{JSON.stringify(job.hyperparameters)}</code>
      </p>
      <div class="row progress-row">
        <label for="job-progress">Progress</label>
        <progress
          id="job-progress"
          max={1}
          value={p?.progress ?? (job.status === 'succeeded' ? 1 : 0)}
        />
        <span aria-live="polite">
          {pct(p?.progress ?? (job.status === 'succeeded' ? 1 : 0))}
          {p &&
            ` · epoch ${Math.min(p.epoch + 1, p.epochs)} of ${p.epochs}, step ${p.step} of ${p.stepsPerEpoch}`}
          {left !== null && ` · about ${formatDuration(left)} left`}
        </span>
      </div>
      {streaming && running && <p class="muted">Live from the job's event stream.</p>}
      <ErrorMessage error={error} />
      {job.error && (
        <p class="error" role="alert">
          {job.error}
        </p>
      )}
      {job.status === 'succeeded' && job.result && (
        <p class="success" role="status">
          New model <code>{job.result.model}</code>.{' '}
          <a class="button" href={`#/try?model=${encodeURIComponent(job.result.model)}`}>
            Open {job.result.model} in Try it
          </a>
        </p>
      )}
      <div class="charts">
        <LineChart
          title="Loss per step"
          xLabel="epoch"
          series={[
            { label: 'loss', color: '#0b57d0' },
            { label: 'ce', color: '#b3261e' },
            { label: 'fm', color: '#146c2e' },
          ]}
          data={lossData}
          summary={
            last?.loss !== undefined
              ? `${points.length} points, last loss ${fmt(last.loss)} at epoch ${fmt(last.x, 2)}`
              : 'no points yet'
          }
        />
        <LineChart
          title="Accuracy per epoch"
          xLabel="epochs done"
          series={accKeys.map((k, i) => ({
            label: k,
            color: ['#0b57d0', '#b3261e', '#146c2e', '#6b3fa0'][i % 4],
          }))}
          data={accData}
          summary={
            history.length
              ? history
                  .map(
                    (h) =>
                      `epoch ${h.epoch + 1}: ${accKeys.map((k) => `${k} ${h.metrics?.[k] !== undefined ? fmt(h.metrics[k], 3) : '–'}`).join(', ')}`,
                  )
                  .join('; ')
              : 'no finished epoch yet'
          }
        />
      </div>
    </article>
  );
}

function JobList({ selected, tick }: { selected?: string; tick: number }) {
  const jobs = useLoad(() => getJson<FineTuneJobView[]>('/fine-tunes'), [tick]);
  if (jobs.error) return <ErrorMessage error={jobs.error} />;
  if (!jobs.data) return <p>Loading jobs…</p>;
  if (jobs.data.length === 0) return <p>No fine-tunes yet.</p>;
  return (
    <div class="scroll" tabIndex={0} role="region" aria-label="Jobs table">
      <table>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Base model</th>
            <th scope="col">Dataset</th>
            <th scope="col">Status</th>
            <th scope="col">Progress</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {jobs.data.map((j) => (
            <tr key={j.id} aria-current={j.id === selected ? 'true' : undefined}>
              <th scope="row">
                <a href={`#/fine-tunes/${j.id}`}>{j.id}</a>
              </th>
              <td>{j.model}</td>
              <td>
                <code>{j.dataset}</code>
              </td>
              <td>{j.status}</td>
              <td>{j.progress ? pct(j.progress.progress) : '–'}</td>
              <td>{new Date(j.createdAt).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function FineTunesPage({ route }: { route: Route }) {
  const selected = route.rest[0];
  const [tick, setTick] = useState(0);
  const changed = () => setTick((t) => t + 1);
  return (
    <>
      <h1>Fine-tunes</h1>
      {selected && <JobView id={selected} onChanged={changed} />}
      <Section title="New fine-tune">
        <FineTuneForm
          onCreated={(job) => {
            changed();
            location.hash = `#/fine-tunes/${job.id}`;
          }}
        />
      </Section>
      <Section title="Jobs">
        <JobList selected={selected} tick={tick} />
      </Section>
    </>
  );
}
