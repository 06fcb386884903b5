/** An rxjs Observable as the AsyncIterator a GraphQL subscription resolver returns. */
import type { Observable } from 'rxjs';

export function toAsyncIterator<T>(source: Observable<T>): AsyncIterableIterator<T> {
  const buffer: T[] = [];
  const waiting: ((r: IteratorResult<T>) => void)[] = [];
  const failed: ((e: unknown) => void)[] = [];
  let done = false;
  let error: unknown = null;
  const sub = source.subscribe({
    next: (v) => {
      const w = waiting.shift();
      failed.shift();
      if (w) w({ value: v, done: false });
      else buffer.push(v);
    },
    error: (e) => {
      error = e;
      done = true;
      for (const f of failed.splice(0)) f(e);
      waiting.length = 0;
    },
    complete: () => {
      done = true;
      for (const w of waiting.splice(0)) w({ value: undefined, done: true });
      failed.length = 0;
    },
  });
  const it: AsyncIterableIterator<T> = {
    next: () => {
      if (buffer.length) return Promise.resolve({ value: buffer.shift()!, done: false });
      if (error) return Promise.reject(error);
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => {
        waiting.push(resolve);
        failed.push(reject);
      });
    },
    return: () => {
      sub.unsubscribe();
      done = true;
      buffer.length = 0;
      for (const w of waiting.splice(0)) w({ value: undefined, done: true });
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}
