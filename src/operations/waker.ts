/**
 * Wakes this process's job fetcher for a queue (src/operations/fetcher.ts). pg-boss's NOTIFY only
 * announces jobs that can run at once; a job with a future `startAfter` (a scheduled retry) would
 * otherwise wait for the next poll (30 s under NOTIFY). The runner registers its fetchers; attempts
 * and the reconciler wake them when such a job falls due.
 */
export interface Waker {
  register(queue: string, wake: () => void): void;
  /** Wakes the queue's workers now. */
  wake(queue: string): void;
  /** Wakes the queue's workers at `at` (a moment after, so the job is due). */
  wakeAt(queue: string, at: Date): void;
  close(): void;
}

export function createWaker(): Waker {
  const workers = new Map<string, (() => void)[]>();
  const timers = new Set<NodeJS.Timeout>();
  const wake = (queue: string) => {
    for (const notify of workers.get(queue) ?? []) notify();
  };
  return {
    register(queue, notify) {
      workers.set(queue, [...(workers.get(queue) ?? []), notify]);
    },
    wake,
    wakeAt(queue, at) {
      const timer = setTimeout(
        () => {
          timers.delete(timer);
          wake(queue);
        },
        Math.max(0, at.getTime() - Date.now()) + 20,
      );
      timer.unref();
      timers.add(timer);
    },
    close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      workers.clear();
    },
  };
}
