/**
 * Try a model: drop, pick or draw images; per image the prediction, top-K bars, the OOD score
 * against its threshold, and the reverse trajectory with a t slider. Solver and steps apply to
 * every request of the page.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import exampleDigit from '../../../docs/examples/seven.png';
import { getJson, postForm } from '../api';
import { DrawingCanvas } from '../components/draw';
import { OodGauge, TopKBars } from '../components/result';
import { SolveSettings, Trajectory } from '../components/trajectory';
import { requestBody, resolve } from '../openapi';
import { openApi } from '../schema';
import type { ClassifyResponse, Classification, Model, ModelList } from '../types';
import { ErrorMessage, pct, Route, Section, useLoad } from '../ui';

interface Img {
  id: number;
  name: string;
  blob: Blob;
  url: string;
}

let nextId = 1;
const ACCEPT = 'image/png,image/jpeg,image/webp';

/** The solvers the classify route accepts, from its schema. */
async function solverChoices(): Promise<string[]> {
  const doc = await openApi();
  const solver = resolve(doc, requestBody(doc, '/classify').properties?.solver);
  return (solver.enum ?? []).map(String);
}

function ImageResult({
  img,
  result,
  model,
  settings,
  failed,
  onRemove,
}: {
  img: Img;
  result: Classification | undefined;
  failed: boolean;
  model: Model;
  settings: SolveSettings;
  onRemove: () => void;
}) {
  const [open, setOpen] = useState(false);
  const id = `img-${img.id}`;
  return (
    <article class="card result" aria-labelledby={`${id}-title`}>
      <div class="result-head">
        <img class="preview" src={img.url} alt={`input: ${img.name}`} />
        <div>
          <h3 id={`${id}-title`}>{img.name}</h3>
          {result ? (
            <p class="prediction">
              Predicted <strong data-testid="label">{result.label}</strong> (
              {pct(result.probability)})
            </p>
          ) : (
            <p aria-live="polite">
              {failed ? 'Not classified (see the error above).' : 'Classifying…'}
            </p>
          )}
        </div>
        <button
          type="button"
          class="secondary small"
          onClick={onRemove}
          aria-label={`Remove ${img.name}`}
        >
          Remove
        </button>
      </div>
      {result && (
        <>
          <h4 id={`${id}-topk`}>Top {result.topK.length}</h4>
          <TopKBars topK={result.topK} id={id} />
          <h4>Out-of-distribution score</h4>
          {result.ood ? (
            <OodGauge ood={result.ood} model={model} />
          ) : (
            <p class="muted">This model has no OOD thresholds.</p>
          )}
        </>
      )}
      <button type="button" aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? 'Hide trajectory' : 'Show trajectory'}
      </button>
      {open && <Trajectory image={img.blob} model={model} settings={settings} />}
    </article>
  );
}

export function TryPage({ route }: { route: Route }) {
  const models = useLoad(() => getJson<ModelList>('/models'), []);
  const solvers = useLoad(solverChoices, []);
  const requested = route.params.get('model');
  const modelId = requested ?? models.data?.default ?? models.data?.models[0]?.id ?? null;
  const model = models.data?.models.find((m) => m.id === modelId);
  const [solver, setSolver] = useState('');
  const [steps, setSteps] = useState('');
  const [topK, setTopK] = useState('5');
  const [images, setImages] = useState<Img[]>([]);
  const [results, setResults] = useState<Classification[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [dragging, setDragging] = useState(false);
  const settings = useMemo<SolveSettings>(() => ({ solver, steps }), [solver, steps]);

  const add = (files: { name: string; blob: Blob }[]) =>
    setImages((prev) => [
      ...prev,
      ...files.map((f) => ({
        id: nextId++,
        name: f.name,
        blob: f.blob,
        url: URL.createObjectURL(f.blob),
      })),
    ]);

  useEffect(() => {
    if (!model || images.length === 0) return setResults(null);
    let live = true;
    const f = new FormData();
    for (const i of images) f.append('images', i.blob, i.name);
    f.append('model', model.id);
    if (topK) f.append('topK', topK);
    if (solver) f.append('solver', solver);
    if (steps) f.append('steps', steps);
    setResults(null);
    setError(null);
    // Typing "12" in Steps is two changes: wait for the settings to settle.
    const timer = setTimeout(
      () =>
        postForm('/classify', f)
          .then((r) => r.json() as Promise<ClassifyResponse>)
          .then(
            (r) => live && setResults(r.results),
            (e: unknown) => live && setError(e),
          ),
      250,
    );
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [images, model?.id, solver, steps, topK]);

  const chooseModel = (id: string) => (location.hash = `#/try?model=${encodeURIComponent(id)}`);

  return (
    <>
      <h1>Try it</h1>
      <ErrorMessage error={models.error ?? solvers.error} />
      {requested && models.data && !model && (
        <p class="error" role="alert">
          Model {requested} is not served (yet): the list has{' '}
          {models.data.models.map((m) => m.id).join(', ')}.
        </p>
      )}
      <Section title="Settings">
        <div class="grid">
          <div class="field">
            <label for="try-model">Model</label>
            <select
              id="try-model"
              value={modelId ?? ''}
              onChange={(e) => chooseModel(e.currentTarget.value)}
            >
              {models.data?.models.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.id}
                  {m.isDefault ? ' (default)' : ''}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="try-solver">Solver</label>
            <select
              id="try-solver"
              value={solver}
              onChange={(e) => setSolver(e.currentTarget.value)}
            >
              <option value="">model's ({model?.solver.name ?? '…'})</option>
              {solvers.data?.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="try-steps">Steps</label>
            <input
              id="try-steps"
              type="number"
              min={1}
              placeholder={model ? `model's (${model.solver.steps})` : ''}
              value={steps}
              onInput={(e) => setSteps(e.currentTarget.value)}
            />
          </div>
          <div class="field">
            <label for="try-topk">Top K</label>
            <input
              id="try-topk"
              type="number"
              min={1}
              value={topK}
              onInput={(e) => setTopK(e.currentTarget.value)}
            />
          </div>
        </div>
      </Section>
      <Section title="Images">
        <div
          class={dragging ? 'drop dragging' : 'drop'}
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            add([...(e.dataTransfer?.files ?? [])].map((f) => ({ name: f.name, blob: f })));
          }}
        >
          <p>Drop PNG, JPEG or WebP images here, or</p>
          <div class="row">
            <label class="button">
              Choose images…
              <input
                class="sr-only"
                type="file"
                accept={ACCEPT}
                multiple
                onChange={(e) => {
                  add([...(e.currentTarget.files ?? [])].map((f) => ({ name: f.name, blob: f })));
                  e.currentTarget.value = '';
                }}
              />
            </label>
            <button
              type="button"
              onClick={async () =>
                add([
                  {
                    name: 'example digit (seven.png)',
                    blob: await (await fetch(exampleDigit)).blob(),
                  },
                ])
              }
            >
              Use the example digit
            </button>
            {images.length > 0 && (
              <button type="button" class="secondary" onClick={() => setImages([])}>
                Clear all
              </button>
            )}
          </div>
        </div>
        {model?.input.channels === 1 && (
          <details>
            <summary>Draw an image</summary>
            <DrawingCanvas onDone={(b) => add([{ name: `drawing ${nextId}`, blob: b }])} />
          </details>
        )}
      </Section>
      <ErrorMessage error={error} />
      {model &&
        images.map((img, i) => (
          <ImageResult
            key={img.id}
            img={img}
            result={results?.[i]}
            model={model}
            settings={settings}
            failed={error !== null}
            onRemove={() => setImages((prev) => prev.filter((p) => p.id !== img.id))}
          />
        ))}
    </>
  );
}
