import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/**
 * The request a piece of work belongs to, carried through its async calls (AsyncLocalStorage), so
 * every log line written while serving a request names it, and operations it starts record it.
 * The storage holds no state of its own: each request's id lives in its own async context, so two
 * opsgraph instances in one process never see each other's.
 */
const storage = new AsyncLocalStorage<{ requestId: string }>();

/** A client's `x-request-id` is kept when it is short and plain; otherwise a new id is made. */
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request id to use for a request carrying `header` (`x-request-id`), or a new one. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && CLIENT_ID.test(value) ? value : randomUUID();
}

/** Runs `work` (and everything it starts) as part of request `requestId`. */
export const runInRequest = <T>(requestId: string, work: () => T): T => storage.run({ requestId }, work);

/** The id of the request the current code runs for, if any. */
export const currentRequestId = (): string | undefined => storage.getStore()?.requestId;
