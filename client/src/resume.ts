import { OpsgraphError, RetryableEnd } from './errors.js';
import type { SubscribeRequest, Transport } from './transport/types.js';

/** How a stream retries after an end that resubscribing repairs. */
export interface RetryOptions {
  /** Consecutive attempts without a message after which the stream fails (RETRIES_EXHAUSTED). Default Infinity. */
  attempts?: number;
  /** The first retry waits about this long (ms); each further one doubles it. Default 250. */
  baseDelayMs?: number;
  /** The longest wait between attempts (ms). Default 10000. */
  maxDelayMs?: number;
}

/** One step of a stream: what to hand the caller, and whether the stream is over. */
export interface Step<T> {
  /** The value to deliver; undefined to drop the message (already delivered). */
  value?: T;
  /** The stream has reached its end (a terminal state): stop after delivering `value`. */
  done?: boolean;
}

/** What one resumable stream needs: the request for where it stands, and what each message does. */
export interface ResumeSpec<T> {
  /** The request to (re)subscribe with, from the position reached so far. */
  request(): SubscribeRequest;
  /** Takes one message's data, moves the position on and says what to deliver. */
  accept(data: unknown): Step<T>;
  /** Told of each retryable end before the stream subscribes again (to move the position on). */
  retrying?(end: RetryableEnd): void;
}

export interface ResumeOptions {
  signal?: AbortSignal;
  retry?: RetryOptions;
  /** Called with true when a (re)subscription is live, false when it ended. */
  onConnectionChange?: (connected: boolean) => void;
}

/** Full jitter over an exponential backoff, never less than the server's hint. */
function delayFor(attempt: number, retry: Required<RetryOptions>, minDelayMs: number): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
  return Math.max(minDelayMs, ceiling / 2 + (Math.random() * ceiling) / 2);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * The one resume loop both transports share: subscribes with `spec.request()`, hands each message
 * to `spec.accept` (which drops repeats and tracks the position), and after a retryable end
 * (RetryableEnd: a dropped connection, SERVER_SHUTTING_DOWN, SUBSCRIBER_TOO_SLOW,
 * SERVICE_UNAVAILABLE…) waits with backoff and jitter and subscribes again from the position
 * reached. Ends when `accept` says done, when the server completes the subscription, or on abort;
 * throws OpsgraphAuthError / OpsgraphError at once.
 */
export async function* resume<T>(
  transport: Transport,
  spec: ResumeSpec<T>,
  options: ResumeOptions = {},
): AsyncGenerator<T, void, undefined> {
  const retry: Required<RetryOptions> = {
    attempts: options.retry?.attempts ?? Number.POSITIVE_INFINITY,
    baseDelayMs: options.retry?.baseDelayMs ?? 250,
    maxDelayMs: options.retry?.maxDelayMs ?? 10_000,
  };
  const { signal } = options;
  let attempt = 0;
  for (;;) {
    if (signal?.aborted) return;
    let minDelayMs = 0;
    let connected = false;
    const setConnected = (value: boolean) => {
      if (connected === value) return;
      connected = value;
      options.onConnectionChange?.(value);
    };
    try {
      for await (const data of transport.subscribe(spec.request(), signal, () => setConnected(true))) {
        setConnected(true);
        attempt = 0;
        const step = spec.accept(data);
        if (step.value !== undefined) yield step.value;
        if (step.done) return;
      }
      return; // the server completed the subscription
    } catch (error) {
      if (signal?.aborted) return;
      if (!(error instanceof RetryableEnd)) throw error;
      spec.retrying?.(error);
      minDelayMs = error.minDelayMs;
      attempt += 1;
      if (attempt > retry.attempts) {
        throw new OpsgraphError(
          `Gave up after ${retry.attempts} attempts: ${error.message}`,
          'RETRIES_EXHAUSTED',
        );
      }
    } finally {
      setConnected(false);
    }
    await sleep(delayFor(attempt, retry, minDelayMs), signal);
  }
}
