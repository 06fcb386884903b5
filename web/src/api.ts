/**
 * The dashboard's one way to the API: fetch with the tab's API key, errors as the API's own
 * `{code, message}`, uploads with progress (XMLHttpRequest: fetch cannot report upload progress)
 * and server-sent events read with fetch (EventSource cannot send the x-api-key header).
 * On a 401 the page asks for a key (one prompt however many requests failed), keeps it for the
 * tab in sessionStorage, and retries.
 */
import { EventSourceParserStream } from 'eventsource-parser/stream';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const KEY_ITEM = 'prg.apiKey';

export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY_ITEM),
  set: (k: string) => sessionStorage.setItem(KEY_ITEM, k),
  clear: () => sessionStorage.removeItem(KEY_ITEM),
};

/** Shows the key prompt with the server's reason; resolves to the key, or null when dismissed. */
export type KeyPrompt = (reason: string) => Promise<string | null>;
let keyPrompt: KeyPrompt = async () => null;
let pendingPrompt: Promise<string | null> | null = null;

export function setKeyPrompt(p: KeyPrompt): void {
  keyPrompt = p;
}

/** One prompt at a time: concurrent 401s wait for the same answer. */
function askForKey(reason: string): Promise<string | null> {
  pendingPrompt ??= keyPrompt(reason).finally(() => (pendingPrompt = null));
  return pendingPrompt;
}

/** The API's `{statusCode, code, message}` (message may be a list from validation). */
export function errorFromBody(status: number, statusText: string, text: string): ApiError {
  try {
    const b = JSON.parse(text) as { code?: unknown; message?: unknown };
    const message = Array.isArray(b.message) ? b.message.join('; ') : b.message;
    if (typeof message === 'string' && message !== '')
      return new ApiError(status, typeof b.code === 'string' ? b.code : `HTTP_${status}`, message);
  } catch {
    // not JSON: fall through to the status line
  }
  return new ApiError(status, `HTTP_${status}`, `${status} ${statusText}`.trim());
}

const withKey = (headers?: HeadersInit): Headers => {
  const h = new Headers(headers);
  const k = apiKey.get();
  if (k) h.set('x-api-key', k);
  return h;
};

/** Retries after a 401 while the user supplies new keys; gives up when the prompt is dismissed. */
async function withKeyRetry<T>(
  send: () => Promise<{ status: number; error?: ApiError; value?: T }>,
): Promise<T> {
  for (;;) {
    const r = await send();
    if (r.status === 401 && r.error) {
      const key = await askForKey(r.error.message);
      if (key) {
        apiKey.set(key);
        continue;
      }
    }
    if (r.error) throw r.error;
    return r.value as T;
  }
}

export function request(path: string, init: RequestInit = {}): Promise<Response> {
  return withKeyRetry(async () => {
    let res: Response;
    try {
      res = await fetch(path, { ...init, headers: withKey(init.headers) });
    } catch (e) {
      return { status: 0, error: new ApiError(0, 'NETWORK', `server unreachable: ${String(e)}`) };
    }
    if (res.ok) return { status: res.status, value: res };
    return {
      status: res.status,
      error: errorFromBody(res.status, res.statusText, await res.text()),
    };
  });
}

export const getJson = async <T>(path: string): Promise<T> =>
  (await request(path)).json() as Promise<T>;

export const postJson = async <T>(path: string, body: unknown): Promise<T> =>
  (
    await request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
  ).json() as Promise<T>;

export const postForm = async (path: string, form: FormData): Promise<Response> =>
  request(path, { method: 'POST', body: form });

export const del = async (path: string): Promise<void> => {
  await request(path, { method: 'DELETE' });
};

/** POST multipart with upload progress (0..1); the parsed JSON answer. */
export function upload<T>(
  path: string,
  form: FormData,
  onProgress: (f: number) => void,
): Promise<T> {
  return withKeyRetry<T>(
    () =>
      new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        xhr.open('POST', path);
        const k = apiKey.get();
        if (k) xhr.setRequestHeader('x-api-key', k);
        xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
        xhr.onload = () => {
          if (xhr.status >= 200 && xhr.status < 300) {
            onProgress(1);
            resolve({ status: xhr.status, value: JSON.parse(xhr.responseText) as T });
          } else
            resolve({
              status: xhr.status,
              error: errorFromBody(xhr.status, xhr.statusText, xhr.responseText),
            });
        };
        xhr.onerror = () =>
          resolve({
            status: 0,
            error: new ApiError(0, 'NETWORK', 'upload failed: server unreachable'),
          });
        xhr.send(form);
      }),
  );
}

export interface ServerEvent {
  event: string;
  data: unknown;
}

/** Reads a server-sent event stream until it ends or `signal` aborts. */
export async function streamEvents(
  path: string,
  onEvent: (e: ServerEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await request(path, { headers: { accept: 'text/event-stream' }, signal });
  if (!res.body) throw new ApiError(0, 'NETWORK', 'the event stream has no body');
  const events = res.body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream());
  const reader = events.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onEvent({ event: value.event ?? 'message', data: JSON.parse(value.data) as unknown });
    }
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  } finally {
    reader.releaseLock();
  }
}
