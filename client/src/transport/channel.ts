/**
 * Callbacks (a sink) turned into an async iterator: `push` queues a value, `end` finishes the
 * iterator (with an error, or normally). Values queued before the end are still delivered.
 */
export function channel<T>(onReturn: () => void): {
  push(value: T): void;
  end(error?: unknown): void;
  iterator: AsyncIterableIterator<T>;
} {
  const queue: T[] = [];
  let ended = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const poke = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const iterator: AsyncIterableIterator<T> = {
    async next(): Promise<IteratorResult<T>> {
      for (;;) {
        if (queue.length) return { value: queue.shift() as T, done: false };
        if (failure) {
          const { error } = failure;
          failure = undefined;
          throw error;
        }
        if (ended) return { value: undefined, done: true };
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
    async return(): Promise<IteratorResult<T>> {
      if (!ended) {
        ended = true;
        queue.length = 0;
        onReturn();
      }
      poke();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return {
    push(value) {
      if (ended) return;
      queue.push(value);
      poke();
    },
    end(error) {
      if (ended) return;
      ended = true;
      if (error !== undefined) failure = { error };
      poke();
    },
    iterator,
  };
}
