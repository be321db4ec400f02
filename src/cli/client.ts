import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'graphql-ws';
import type { UpdateView } from './documents.ts';
import { CliError } from './errors.ts';

/** Where the server is and who we are (`--url`/OPSGRAPH_URL, `--token`/OPSGRAPH_TOKEN). */
export interface Connection {
  url: string;
  token?: string;
}

interface GraphQLErrorView {
  message: string;
  extensions?: { code?: string; retryable?: boolean; afterSequence?: number };
}

interface Response<T> {
  data?: T | null;
  errors?: GraphQLErrorView[];
}

/** One line for a GraphQL error: its message and its code when it has one. */
const describeGraphQLError = (error: GraphQLErrorView) =>
  error.extensions?.code ? `${error.message} (${error.extensions.code})` : error.message;

/** The reason of a failed fetch (e.g. ECONNREFUSED) without its stack. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/** Attempts of a query refused with a retryable error (SERVICE_UNAVAILABLE, STATEMENT_TIMEOUT). */
const QUERY_ATTEMPTS = 3;

/**
 * One query or mutation over HTTP; GraphQL errors and unreachable servers become CliErrors. A query
 * (`idempotent`) refused with a retryable error is sent again, up to QUERY_ATTEMPTS times, after
 * the server's Retry-After (or 0.5 s, then 1 s); a mutation never is (it might have been applied).
 */
export async function request<T>(
  connection: Connection,
  query: string,
  variables: Record<string, unknown>,
  options: { idempotent?: boolean } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const { body, status, retryAfterMs } = await post<T>(connection, query, variables);
    const errors = body.errors ?? [];
    const retryable = errors.length > 0 && errors.every((error) => error.extensions?.retryable);
    if (retryable && options.idempotent && attempt < QUERY_ATTEMPTS) {
      await sleep(retryAfterMs ?? 500 * 2 ** (attempt - 1));
      continue;
    }
    if (errors.length) throw new CliError(errors.map(describeGraphQLError).join('; '));
    if (!body.data) throw new CliError(`${connection.url} answered HTTP ${status} without data`);
    return body.data;
  }
}

async function post<T>(connection: Connection, query: string, variables: Record<string, unknown>) {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json',
  };
  if (connection.token) headers.authorization = `Bearer ${connection.token}`;
  let response: globalThis.Response;
  try {
    response = await fetch(connection.url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new CliError(`cannot reach ${connection.url}: ${networkReason(error)}`);
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  const retryAfterMs = retryAfter > 0 ? Math.min(retryAfter, 10) * 1000 : undefined;
  try {
    return { body: (await response.json()) as Response<T>, status: response.status, retryAfterMs };
  } catch {
    throw new CliError(`${connection.url} answered HTTP ${response.status} without a GraphQL response`);
  }
}

/** Close codes after which reconnecting cannot help (see src/graphql/websocket.ts). */
const FATAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4404, 4409, 4429, 1009]);

/** How long a watch keeps trying to resume after a dropped stream, counted from its last message. */
export const RESUME_WINDOW_MS = 60_000;

export interface FollowOptions {
  /** Called before each attempt to resume, with why the stream ended (for a note on stderr). */
  onResume?(reason: string, afterSequence: number): void;
  /** Give up resuming after this long without a message. Default RESUME_WINDOW_MS. */
  resumeWindowMs?: number;
  /** Replay the events after this sequence first (0: all of them). Default: the current state only. */
  afterSequence?: number;
}

/**
 * How a stream ended: completed, or early with a reason — `refused` when the server said retry
 * (a retryable GraphQL error), `fatal` when reconnecting cannot help.
 */
type Outcome = { done: true } | { done: false; reason: string; refused?: boolean; fatal?: string };

/**
 * The messages of an `operationUpdated`-like subscription (`query` takes `$id` and
 * `$afterSequence`) over graphql-ws, in order and without repeats. When the stream ends early —
 * the server shuts down (SERVER_SHUTTING_DOWN), the subscriber fell behind, the socket dropped —
 * it subscribes again with `afterSequence` set to the last sequence received, with backoff, for
 * up to `resumeWindowMs` after the last message. Before any message arrived, a socket that cannot
 * connect fails at once (a retryable refusal is still retried).
 */
export async function* follow(
  connection: Connection,
  query: string,
  id: string,
  options: FollowOptions = {},
): AsyncGenerator<UpdateView> {
  const wsUrl = connection.url.replace(/^http/, 'ws');
  const window = options.resumeWindowMs ?? RESUME_WINDOW_MS;
  let last: number | undefined = options.afterSequence;
  let lastMessageAt = Date.now();
  let delay = 250;
  for (;;) {
    const client = createClient({
      url: wsUrl,
      connectionParams: connection.token ? { authorization: `Bearer ${connection.token}` } : {},
      retryAttempts: 0,
      lazy: true,
      keepAlive: 10_000,
    });
    let outcome: Outcome;
    try {
      outcome = { done: true };
      const results = client.iterate<{ [field: string]: UpdateView }>({
        query,
        variables: { id, afterSequence: last ?? null },
      });
      for await (const result of results) {
        if (result.errors?.length) {
          const errors = result.errors as GraphQLErrorView[];
          if (!errors[0]?.extensions?.retryable)
            throw new CliError(errors.map(describeGraphQLError).join('; '));
          outcome = { done: false, reason: describeGraphQLError(errors[0]), refused: true };
          break;
        }
        const update = Object.values(result.data ?? {})[0];
        if (!update) continue;
        lastMessageAt = Date.now();
        delay = 250;
        // A resumed stream may open with the current state again: never go backwards.
        if (last !== undefined && update.sequence < last) continue;
        if (last !== undefined && update.sequence === last && update.event) continue;
        last = update.sequence;
        yield update;
      }
    } catch (error) {
      if (error instanceof CliError) throw error;
      outcome = closeOutcome(error, wsUrl);
    } finally {
      await client.dispose();
    }
    if (outcome.done) return;
    if (outcome.fatal) throw new CliError(outcome.fatal);
    if (last === undefined && !outcome.refused) {
      throw new CliError(`cannot subscribe at ${wsUrl}: ${outcome.reason}`);
    }
    if (Date.now() - lastMessageAt > window) {
      throw new CliError(`gave up resuming after ${Math.round(window / 1000)} s: ${outcome.reason}`);
    }
    options.onResume?.(outcome.reason, last ?? 0);
    await sleep(delay);
    delay = Math.min(delay * 2, 4000);
  }
}

/** What a closed socket (or a failed connect) means for the watch. */
function closeOutcome(error: unknown, wsUrl: string): Outcome {
  const event = error as { code?: number; reason?: string; message?: string };
  if (typeof event.code === 'number') {
    const reason = `connection closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`;
    return FATAL_CLOSE_CODES.has(event.code)
      ? { done: false, reason, fatal: `${wsUrl}: ${event.reason || reason}` }
      : { done: false, reason };
  }
  return { done: false, reason: event.message || 'connection failed' };
}
