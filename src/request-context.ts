import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/**
 * The request a piece of work belongs to, carried through its async calls (AsyncLocalStorage), so
 * every log line written while serving a request names it, and operations it starts record it.
 * The storage holds no state of its own: each request's id lives in its own async context, so two
 * opsgraph instances in one process never see each other's.
 */
interface RequestStore {
  requestId: string;
  /** Database statements of this request running now, and those waiting for a turn. */
  statements?: { running: number; waiting: (() => void)[] };
}

const storage = new AsyncLocalStorage<RequestStore>();

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

/**
 * Runs one database statement of the current request once fewer than `max` of its statements run
 * (outside a request: at once). One request — say a query with 45 aliases, each reading a list —
 * then holds at most `max` connections of the API pool, and other users' requests find one free.
 */
export async function inStatementTurn<T>(max: number, statement: () => Promise<T>): Promise<T> {
  const store = storage.getStore();
  if (!store) return statement();
  store.statements ??= { running: 0, waiting: [] };
  const turns = store.statements;
  if (turns.running >= max) await new Promise<void>((resolve) => turns.waiting.push(resolve));
  else turns.running += 1;
  try {
    return await statement();
  } finally {
    const next = turns.waiting.shift();
    if (next) next();
    else turns.running -= 1;
  }
}
