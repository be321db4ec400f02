import type { EventMessage } from './record.ts';

/**
 * The plumbing both live streams share (`operationUpdated`: src/operations/updates.ts,
 * `operationsUpdated`: src/operations/live-updates.ts), as one object per subscription with its
 * methods on the prototype — no closures, no per-subscription shutdown listener.
 *
 * - Consumer side: an async iterator. The producer loop (`run`, the subclass) hands over one value
 *   at a time with `push`, which resolves when the consumer asks for the next one: graphql-ws asks
 *   only once the socket has taken the previous message, SSE once the stream drained, so a slow
 *   client slows only its own loop.
 * - Bus side: `offer` (bound once, `onMessage`) queues live messages for the loop, at most
 *   `maxBacklog`; one more ends the stream with the subclass's `tooSlow` error. Publishers never
 *   wait for subscribers.
 * - `finish(error?)` ends the stream: a value already handed over is still delivered, then the
 *   error (or the end). Shutdown of the process (`Resources.shutdown`) finishes every open stream
 *   with the subclass's `shuttingDown` error, through one listener per process.
 * - The loop starts at the first `next()`; `release` runs once it has ended (or at `finish`, when
 *   the stream ended before its loop started: a subclass may subscribe before handing it out).
 */
export abstract class LiveStream<T> implements AsyncIterableIterator<T> {
  /** Live messages waiting for the loop: the per-subscriber buffer. */
  protected readonly queue: EventMessage[] = [];
  protected finished = false;
  /** For the bus: queues a live message (bound once per stream). */
  readonly onMessage = (payload: unknown): void => this.offer(payload as EventMessage);

  private started = false;
  private error: unknown;
  private wake: (() => void) | undefined;
  /** A value handed over and not taken yet, with what resolves its `push`. */
  private pending: { value: T; resolve: () => void } | undefined;
  /** Resolves the producer's `push` of the value handed over last. */
  private resume: (() => void) | undefined;
  /** The consumer waiting in `next()`. */
  private puller:
    | { resolve: (step: IteratorResult<T>) => void; reject: (error: unknown) => void }
    | undefined;

  constructor(
    private readonly maxBacklog: number,
    private readonly shutdown: AbortSignal,
  ) {}

  /** The loop: deliver with `push`, wait with `idle`, until `finished`. Errors end the stream (`failed`). */
  protected abstract run(): Promise<void>;
  /** The error for a subscriber that let `waiting` messages pile up. */
  protected abstract tooSlow(waiting: number): Error;
  /** The error for a stream ended by the process shutting down. */
  protected abstract shuttingDown(): Error;
  /** The error to end with when `run` throws `error`. */
  protected failed(error: unknown): unknown {
    return error;
  }
  /** Releases what `run` took (bus subscriptions, timers); called once, after it ended. */
  protected release(): void {}

  [Symbol.asyncIterator]() {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (!this.started) this.start();
    // Asking for more: the value handed over last is taken care of.
    const resume = this.resume;
    this.resume = undefined;
    resume?.();
    const pending = this.pending;
    if (pending) {
      this.pending = undefined;
      this.resume = pending.resolve;
      return Promise.resolve({ done: false, value: pending.value });
    }
    if (this.finished) return this.ended();
    return new Promise((resolve, reject) => {
      this.puller = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.pending = undefined;
    this.finish();
    this.error = undefined;
    return Promise.resolve({ done: true, value: undefined });
  }

  throw(error: unknown): Promise<IteratorResult<T>> {
    this.return();
    return Promise.reject(error);
  }

  /** Hands `value` to the consumer; resolves when the consumer asks for the next one (or the stream ended). */
  protected push(value: T): Promise<void> {
    if (this.finished) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const puller = this.puller;
      if (puller) {
        this.puller = undefined;
        this.resume = resolve;
        puller.resolve({ done: false, value });
      } else this.pending = { value, resolve };
    });
  }

  /** Waits until `poke` (a message queued, work owed, or the end). */
  protected idle(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = resolve;
    });
  }

  protected poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Ends the stream, with `error` for the consumer after what was handed over. */
  finish(error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.error = error;
    this.queue.length = 0;
    openStreams.get(this.shutdown)?.delete(this);
    // Not started: no loop will release what the stream took before (`release` after `run` otherwise).
    if (!this.started) this.release();
    this.poke();
    const resume = this.resume;
    this.resume = undefined;
    resume?.();
    // The loop stops waiting; a value handed over is still delivered (then the error or the end).
    this.pending?.resolve();
    const puller = this.puller;
    if (puller) {
      this.puller = undefined;
      this.ended().then(puller.resolve, puller.reject);
    }
  }

  private offer(message: EventMessage): void {
    if (this.finished) return;
    if (this.queue.length >= this.maxBacklog) {
      this.finish(this.tooSlow(this.queue.length));
      return;
    }
    this.queue.push(message);
    this.poke();
  }

  private ended(): Promise<IteratorResult<T>> {
    const error = this.error;
    if (error === undefined) return Promise.resolve({ done: true, value: undefined });
    this.error = undefined;
    return Promise.reject(error);
  }

  private start(): void {
    // Ended before the consumer came: released by `finish` already.
    if (this.finished) {
      this.started = true;
      return;
    }
    if (this.shutdown.aborted) {
      this.finish(this.shuttingDown());
      this.started = true;
      return;
    }
    this.started = true;
    watchShutdown(this.shutdown).add(this);
    this.run()
      .then(
        () => this.finish(),
        (error: unknown) => this.finish(this.failed(error)),
      )
      .finally(() => this.release());
  }

  /** Called by the process's shutdown listener. */
  endForShutdown(): void {
    this.finish(this.shuttingDown());
  }
}

/** Open streams by shutdown signal (one per running app), with one listener each. */
const openStreams = new WeakMap<AbortSignal, Set<{ endForShutdown(): void }>>();

function watchShutdown(signal: AbortSignal): Set<{ endForShutdown(): void }> {
  let open = openStreams.get(signal);
  if (!open) {
    const streams = new Set<{ endForShutdown(): void }>();
    open = streams;
    openStreams.set(signal, streams);
    signal.addEventListener(
      'abort',
      () => {
        for (const stream of [...streams]) stream.endForShutdown();
      },
      { once: true },
    );
  }
  return open;
}
