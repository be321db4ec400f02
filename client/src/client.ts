import * as documents from './documents.js';
import { RetryableEnd } from './errors.js';
import type {
  ClientBatchUpdatedSubscription,
  ClientListOperationsQueryVariables,
  ClientOperationUpdatedSubscription,
} from './gql/graphql.js';
import { type Document, post, queryText } from './http.js';
import { type ResumeOptions, type RetryOptions, resume } from './resume.js';
import { sseTransport } from './transport/sse.js';
import type { Transport } from './transport/types.js';
import { webSocketTransport } from './transport/ws.js';
import {
  type BatchUpdate,
  type CancelOperationResult,
  isTerminal,
  type OperationChange,
  type OperationFilter,
  type OperationsPage,
  type OperationUpdate,
  type StartBatchInput,
  type StartBatchResult,
  type StartOperationInput,
  type StartOperationResult,
} from './types.js';

export interface ClientOptions {
  /**
   * The GraphQL endpoint over HTTP(S), e.g. `http://localhost:4000/graphql` (WebSocket: the same
   * URL with ws(s)://). In a browser it may be relative to the page (`/graphql`).
   */
  url: string;
  /** A fixed bearer token. */
  token?: string;
  /** Returns the bearer token; called for every request and every (re)connect (so it can refresh). Wins over `token`. */
  getToken?: () => string | null | Promise<string | null>;
  /** How subscriptions travel: graphql-ws over WebSocket, or GraphQL over SSE. Default 'ws'. */
  transport?: 'ws' | 'sse';
  /** Backoff of the resume loop (attempts: Infinity, baseDelayMs: 250, maxDelayMs: 10000). */
  retry?: RetryOptions;
  /**
   * WebSocket only: ping the server this often (ms); a connection that has not answered within half
   * of it is closed and resumed. 0 turns pings off. Default 10000.
   */
  pingIntervalMs?: number;
}

export interface WatchOptions {
  /** Start after this sequence (events after it are replayed first). Default: the current state first. */
  afterSequence?: number;
  /** Ends the stream (the iterator returns). */
  signal?: AbortSignal;
  /** Called with true when the subscription is live, false while it is reconnecting. */
  onConnectionChange?: (connected: boolean) => void;
}

export interface WatchOperationsOptions {
  /** Resume right after this cursor (a message's `cursor`). Default: changes from now on. */
  after?: string;
  signal?: AbortSignal;
  onConnectionChange?: (connected: boolean) => void;
  /**
   * Called when the stream subscribes again with no cursor to resume from (it ended before its
   * first message, and the server named none): changes made meanwhile are not replayed, so a list
   * built from the stream should be loaded again.
   */
  onResync?: () => void;
}

export interface OpsgraphClient {
  /** The options the client was created with (transport defaulted). */
  readonly options: Readonly<ClientOptions> & { transport: 'ws' | 'sse' };
  /**
   * The operation's current state, then every event in order, each once, resuming by itself after
   * a dropped connection or a server that ends the stream early; ends after a terminal state.
   * Throws OpsgraphAuthError (at once) or OpsgraphError (NOT_FOUND, …).
   */
  watchOperation(id: string, options?: WatchOptions): AsyncIterable<OperationUpdate>;
  /** Like watchOperation, for a batch: `operation.batchOutcome` holds each item's status. */
  watchBatch(id: string, options?: WatchOptions): AsyncIterable<BatchUpdate>;
  /** Every change of each visible operation matching `filter`, resuming with the last cursor; never ends on its own. */
  watchOperations(
    filter?: OperationFilter | null,
    options?: WatchOperationsOptions,
  ): AsyncIterable<OperationChange>;
  startOperation(input: StartOperationInput): Promise<StartOperationResult>;
  cancelOperation(id: string, reason?: string): Promise<CancelOperationResult>;
  startBatch(input: StartBatchInput): Promise<StartBatchResult>;
  /** A page of operations you may see, newest first. */
  listOperations(variables?: ClientListOperationsQueryVariables): Promise<OperationsPage>;
  /** Any query or mutation over HTTP. */
  request<TResult = unknown, TVariables = Record<string, unknown>>(
    document: Document<TResult, TVariables>,
    variables?: TVariables,
  ): Promise<TResult>;
  /** Closes connections and ends every stream of this client. */
  close(): void;
}

/** Position tracking shared by watchOperation and watchBatch: drop repeats, end after a terminal state. */
function sequenceSpec<T extends OperationUpdate>(
  query: string,
  id: string,
  afterSequence: number | undefined,
  pick: (data: unknown) => T,
) {
  let last = afterSequence;
  return {
    request: () => ({ query, variables: last === undefined ? { id } : { id, afterSequence: last } }),
    accept(data: unknown) {
      const update = pick(data);
      if (last !== undefined && update.sequence <= last) return {}; // delivered already
      if (last !== undefined && update.event && update.sequence > last + 1) {
        // Never expected (the server fills gaps); resubscribing from `last` replays what is missing.
        throw new RetryableEnd(`Gap after sequence ${last}`, 'SEQUENCE_GAP');
      }
      last = update.sequence;
      return {
        value: update,
        done: isTerminal(update.event ? update.event.status : update.operation.status),
      };
    },
  };
}

/**
 * A client for opsgraph: typed mutations over HTTP, and live streams over WebSocket or SSE that
 * resume by themselves through one loop (see resume.ts).
 */
export function createClient(clientOptions: ClientOptions): OpsgraphClient {
  const options = { ...clientOptions, transport: clientOptions.transport ?? 'ws' } as const;
  // In a browser a relative url ('/graphql') is taken relative to the page.
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const url = base ? new URL(options.url, base).href : options.url;
  const token = async () =>
    options.getToken ? ((await options.getToken()) ?? null) : (options.token ?? null);
  const closed = new AbortController();
  let transport: Transport | undefined;
  const transportNow = () => {
    transport ??=
      options.transport === 'sse' ? sseTransport({ url, token }) : webSocketTransport({ url, token });
    return transport;
  };
  const streamOptions = (watch: { signal?: AbortSignal; onConnectionChange?: (c: boolean) => void }) =>
    ({
      signal: watch.signal ? AbortSignal.any([watch.signal, closed.signal]) : closed.signal,
      retry: options.retry,
      onConnectionChange: watch.onConnectionChange,
    }) satisfies ResumeOptions;
  const request = async <TResult, TVariables>(
    document: Document<TResult, TVariables>,
    variables?: TVariables,
  ) =>
    post<TResult>(url, await token(), queryText(document as Document), variables as Record<string, unknown>);

  return {
    options,
    watchOperation(id, watch = {}) {
      const query = queryText(documents.OperationUpdated);
      const pick = (data: unknown) => (data as ClientOperationUpdatedSubscription).operationUpdated;
      return resume(transportNow(), sequenceSpec(query, id, watch.afterSequence, pick), streamOptions(watch));
    },
    watchBatch(id, watch = {}) {
      const query = queryText(documents.BatchUpdated);
      const pick = (data: unknown) => (data as ClientBatchUpdatedSubscription).batchUpdated;
      return resume(transportNow(), sequenceSpec(query, id, watch.afterSequence, pick), streamOptions(watch));
    },
    watchOperations(filter, watch = {}) {
      let after = watch.after;
      const spec = {
        request: () => ({ query: documents.OperationsUpdated, variables: { filter: filter ?? null, after } }),
        accept(data: unknown) {
          const change = (data as { operationsUpdated: OperationChange }).operationsUpdated;
          after = change.cursor;
          return { value: change };
        },
        retrying(end: RetryableEnd) {
          if (end.resumeAfter) after = end.resumeAfter;
          else if (after === undefined) watch.onResync?.();
        },
      };
      return resume(transportNow(), spec, streamOptions(watch));
    },
    async startOperation(input) {
      return (await request(documents.StartOperation, { input })).startOperation;
    },
    async cancelOperation(id, reason) {
      return (await request(documents.CancelOperation, { id, reason: reason ?? null })).cancelOperation;
    },
    async startBatch(input) {
      return (await request(documents.StartBatch, { input })).startBatch;
    },
    async listOperations(variables = {}) {
      return (await request(documents.ListOperations, variables)).operations;
    },
    request,
    close() {
      closed.abort();
      transport?.close();
      transport = undefined;
    },
  };
}
