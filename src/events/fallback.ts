import type { Logger } from '../logger.ts';
import type { EventBus } from './bus.ts';

/** Reads the latest sequence of each key (keys with no row are left out). */
export type SequenceReader = (keys: string[]) => Promise<Map<string, number>>;

export interface FallbackPollerOptions {
  bus: EventBus;
  read: SequenceReader;
  logger: Logger;
  /** How often to read while the bus is disconnected, in ms. Default 500. */
  intervalMs?: number;
  /** Keys per read query. Default 1000. */
  batchSize?: number;
}

/** Tells readers of a key what the database holds while the bus cannot. */
export interface FallbackPoller {
  /**
   * Calls `onSequence` with the key's latest sequence after every read: every `intervalMs` while
   * the bus is disconnected, and once more when it is connected again (a catch-up for what was
   * committed before the subscriptions came back). Returns the function that stops watching.
   */
  watch(key: string, onSequence: (sequence: number) => void): () => void;
  /** Stops polling and forgets every watcher. */
  close(): void;
}

/**
 * The database fallback of bus subscribers, shared by all of a process's readers: one query per
 * interval for every watched key, and no queries at all while the bus is connected.
 */
export function createFallbackPoller(options: FallbackPollerOptions): FallbackPoller {
  const { bus, read, logger, intervalMs = 500, batchSize = 1000 } = options;
  const watchers = new Map<string, Set<(sequence: number) => void>>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let rerun = false;
  /** A read is owed: the bus is down, or came back and its catch-up read has not succeeded yet. */
  let owed = !bus.connected;
  let failing = false;

  const tick = async () => {
    if (running) {
      rerun = true;
      return;
    }
    if (watchers.size === 0) return;
    running = true;
    rerun = false;
    const connectedBefore = bus.connected;
    try {
      const keys = [...watchers.keys()];
      for (let start = 0; start < keys.length; start += batchSize) {
        const sequences = await read(keys.slice(start, start + batchSize));
        for (const [key, sequence] of sequences) {
          for (const onSequence of watchers.get(key) ?? []) onSequence(sequence);
        }
      }
      if (failing) logger.info('fallback reads recovered');
      failing = false;
      // The catch-up read after a reconnect is done once it started with the bus connected.
      if (connectedBefore && bus.connected) owed = false;
    } catch (error) {
      if (!failing) logger.warn('fallback read failed', { error: (error as Error).message });
      failing = true;
    } finally {
      running = false;
      if (rerun) void tick();
      else schedule();
    }
  };

  const schedule = () => {
    if (timer || !owed || watchers.size === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      void tick();
    }, intervalMs);
    timer.unref();
  };

  const unlisten = bus.onConnectionChange((connected) => {
    owed = true;
    if (connected) {
      // Read now (not after an interval): subscriptions are live again from this point on.
      clearTimeout(timer);
      timer = undefined;
      void tick();
    } else {
      schedule();
    }
  });

  return {
    watch(key, onSequence) {
      let set = watchers.get(key);
      if (!set) {
        set = new Set();
        watchers.set(key, set);
      }
      set.add(onSequence);
      schedule();
      return () => {
        set.delete(onSequence);
        if (set.size === 0 && watchers.get(key) === set) watchers.delete(key);
      };
    },
    close() {
      unlisten();
      clearTimeout(timer);
      timer = undefined;
      watchers.clear();
    },
  };
}
