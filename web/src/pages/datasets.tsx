/** Datasets: upload (zip in ImageFolder layout, or an IDX pair) with progress; list; delete. */
import { useState } from 'preact/hooks';
import { del, getJson, upload } from '../api';
import type { DatasetInfo, DatasetSamplesResponse } from '../types';
import { ErrorMessage, pct, Section, useLoad } from '../ui';

function Samples({ id }: { id: string }) {
  const s = useLoad(
    () => getJson<DatasetSamplesResponse>(`/datasets/${id}/samples?perClass=4`),
    [id],
  );
  if (s.error) return <ErrorMessage error={s.error} />;
  if (!s.data) return <p class="muted">Loading samples…</p>;
  return (
    <div class="scroll" tabIndex={0} role="region" aria-label={`Classes and samples of ${id}`}>
      <table class="samples">
        <thead>
          <tr>
            <th scope="col">Class</th>
            <th scope="col">Images</th>
            <th scope="col">Samples</th>
          </tr>
        </thead>
        <tbody>
          {s.data.classes.map((c) => (
            <tr key={c.name}>
              <th scope="row">{c.name}</th>
              <td>{c.count}</td>
              <td class="thumbs">
                {c.images.map((b, i) => (
                  <img
                    key={i}
                    src={`data:image/png;base64,${b}`}
                    alt={`${c.name} sample ${i + 1}`}
                  />
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function DatasetCard({ d, onDeleted }: { d: DatasetInfo; onDeleted: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const hid = `ds-${d.id}`;
  return (
    <article class="card" aria-labelledby={hid}>
      <header class="card-head">
        <h3 id={hid}>{d.name}</h3>
        <code>{d.id}</code>
        <button
          type="button"
          class="danger small"
          onClick={async () => {
            if (!confirm(`Delete dataset ${d.name} (${d.id})?`)) return;
            try {
              await del(`/datasets/${d.id}`);
              onDeleted();
            } catch (e) {
              setError(e);
            }
          }}
        >
          Delete {d.name}
        </button>
      </header>
      <p>
        {d.format === 'idx' ? 'IDX pair' : 'ImageFolder zip'} · {d.total} images ·{' '}
        {d.classes.length} classes ·{' '}
        {d.shape ? `${d.shape.join('×')} each` : `shapes differ: ${(d.shapes ?? []).join(', ')}`} ·
        uploaded {new Date(d.createdAt).toLocaleString()}
      </p>
      <ErrorMessage error={error} />
      <Samples id={d.id} />
    </article>
  );
}

function UploadForm({ onUploaded }: { onUploaded: (d: DatasetInfo) => void }) {
  const [kind, setKind] = useState<'zip' | 'idx'>('zip');
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<DatasetInfo | null>(null);
  return (
    <form
      onSubmit={async (e) => {
        e.preventDefault();
        const form = new FormData(e.currentTarget);
        form.delete('kind');
        for (const k of ['name', 'classes']) if (form.get(k) === '') form.delete(k);
        setError(null);
        setDone(null);
        setProgress(0);
        try {
          const d = await upload<DatasetInfo>('/datasets', form, setProgress);
          setDone(d);
          onUploaded(d);
          (e.target as HTMLFormElement).reset();
        } catch (err) {
          setError(err);
        } finally {
          setProgress(null);
        }
      }}
    >
      <fieldset>
        <legend>Format</legend>
        <label class="inline">
          <input
            type="radio"
            name="kind"
            checked={kind === 'zip'}
            onChange={() => setKind('zip')}
          />{' '}
          Zip in ImageFolder layout (class/image.png)
        </label>
        <label class="inline">
          <input
            type="radio"
            name="kind"
            checked={kind === 'idx'}
            onChange={() => setKind('idx')}
          />{' '}
          IDX pair (images + labels, optionally gzipped)
        </label>
      </fieldset>
      <div class="grid">
        {kind === 'zip' ? (
          <label>
            Zip file
            <input type="file" name="file" accept=".zip,application/zip" required />
          </label>
        ) : (
          <>
            <label>
              Images (IDX)
              <input type="file" name="images" required />
            </label>
            <label>
              Labels (IDX)
              <input type="file" name="labels" required />
            </label>
            <label>
              Class names (optional, comma-separated, for labels 0, 1, …)
              <input type="text" name="classes" />
            </label>
          </>
        )}
        <label>
          Name (optional)
          <input
            type="text"
            name="name"
            pattern="[\w.\- ]{1,100}"
            title="1-100 letters, digits, spaces, '.', '-' or '_'"
          />
        </label>
      </div>
      <div class="row">
        <button type="submit" disabled={progress !== null}>
          Upload
        </button>
        {progress !== null && (
          <>
            <label for="upload-progress">
              {progress < 1 ? 'Uploading' : 'Checking every image'}
            </label>
            <progress id="upload-progress" max={1} value={progress} />
            <span>{pct(progress)}</span>
          </>
        )}
      </div>
      <ErrorMessage error={error} />
      {done && (
        <p role="status">
          Uploaded {done.name}: {done.total} images in {done.classes.length} classes.
        </p>
      )}
    </form>
  );
}

export function DatasetsPage() {
  const list = useLoad(() => getJson<DatasetInfo[]>('/datasets'), []);
  return (
    <>
      <h1>Datasets</h1>
      <Section title="Upload a dataset">
        <UploadForm onUploaded={list.reload} />
      </Section>
      <section aria-labelledby="h-stored">
        <h2 id="h-stored">Stored datasets</h2>
        <ErrorMessage error={list.error} />
        {list.data && list.data.length === 0 && <p>No datasets yet.</p>}
        {list.data
          ?.slice()
          .reverse()
          .map((d) => (
            <DatasetCard key={d.id} d={d} onDeleted={list.reload} />
          ))}
      </section>
    </>
  );
}
