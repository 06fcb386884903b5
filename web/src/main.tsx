/** The dashboard: one page, four views chosen by the URL hash, and the API-key prompt. */
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { apiKey, setKeyPrompt } from './api';
import { DatasetsPage } from './pages/datasets';
import { FineTunesPage } from './pages/fine-tunes';
import { ModelsPage } from './pages/models';
import { TryPage } from './pages/try';
import './styles.css';
import { useRoute } from './ui';

const PAGES = [
  { id: 'try', title: 'Try it' },
  { id: 'models', title: 'Models' },
  { id: 'datasets', title: 'Datasets' },
  { id: 'fine-tunes', title: 'Fine-tunes' },
] as const;

/** Asks for an API key when the server answers 401; the key is kept for this tab only. */
function KeyDialog() {
  const dialog = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState('');
  const [value, setValue] = useState('');
  const answer = useRef<(k: string | null) => void>(() => {});
  useEffect(() => {
    setKeyPrompt(
      (why) =>
        new Promise((resolve) => {
          answer.current = resolve;
          setReason(why);
          setValue('');
          dialog.current?.showModal();
        }),
    );
  }, []);
  const close = (k: string | null) => {
    dialog.current?.close();
    answer.current(k);
    answer.current = () => {};
  };
  return (
    <dialog ref={dialog} aria-labelledby="key-title" onCancel={() => close(null)}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          close(value.trim() || null);
        }}
      >
        <h2 id="key-title">API key needed</h2>
        <p>
          The server answered: <q>{reason}</q>. The key is kept for this browser tab only.
        </p>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autocomplete="off"
          required
          minLength={8}
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
        />
        <div class="row">
          <button type="submit">Use key</button>
          <button type="button" class="secondary" onClick={() => close(null)}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}

function App() {
  const route = useRoute();
  const page = PAGES.find((p) => p.id === route.page)?.id ?? 'try';
  const [hasKey, setHasKey] = useState(apiKey.get() !== null);
  useEffect(() => {
    document.title = `${PAGES.find((p) => p.id === page)!.title} · PRG dashboard`;
    setHasKey(apiKey.get() !== null);
  }, [page, route.rest.join('/')]);
  return (
    <>
      <a
        class="skip"
        href="#main"
        onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}
      >
        Skip to content
      </a>
      <header class="top">
        <span class="brand">PRG dashboard</span>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} aria-current={p.id === page ? 'page' : undefined}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="links">
          {hasKey && (
            <button
              type="button"
              class="link"
              onClick={() => {
                apiKey.clear();
                setHasKey(false);
              }}
            >
              Forget API key
            </button>
          )}
          <a href="/docs">API docs</a>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        {page === 'try' && <TryPage route={route} />}
        {page === 'models' && <ModelsPage />}
        {page === 'datasets' && <DatasetsPage />}
        {page === 'fine-tunes' && <FineTunesPage route={route} />}
      </main>
      <KeyDialog />
    </>
  );
}

render(<App />, document.getElementById('app')!);
