import type { OpsgraphClient } from './client.js';
import type {
  BatchOperation,
  Operation,
  OperationEvent,
  OperationFilter,
  OperationStatus,
  OperationUpdate,
} from './types.js';

/** What a live view of one operation (or batch) shows; every change is a new object. */
export interface OperationState<TOperation extends Operation = Operation> {
  /** The operation as last sent; null until the first message. */
  operation: TOperation | null;
  /** Its events in sequence order (the latest `maxEvents`). */
  events: OperationEvent[];
  progress: Operation['progress'] | null;
  status: OperationStatus | null;
  /** Why the stream stopped early (OpsgraphAuthError, OpsgraphError); null otherwise. */
  error: Error | null;
  /** A subscription is live on an open connection (false while reconnecting and after the end). */
  connected: boolean;
  /** The stream ended after a terminal state. */
  done: boolean;
}

export interface LiveOptions {
  /** Events kept in `events` (the oldest are dropped). Default 500. */
  maxEvents?: number;
}

export const initialOperationState: OperationState<never> = {
  operation: null,
  events: [],
  progress: null,
  status: null,
  error: null,
  connected: false,
  done: false,
};

/**
 * Drives a live view of one operation (`kind: 'operation'`) or batch (`'batch'`): replays its
 * events from the first, follows it live through the client's resume loop and calls `onChange`
 * with each new state, until the terminal state or `signal`. Framework-free: the React hooks use it.
 */
export function watchOperationState<K extends 'operation' | 'batch'>(
  client: OpsgraphClient,
  id: string,
  kind: K,
  onChange: (state: OperationState<K extends 'batch' ? BatchOperation : Operation>) => void,
  options: LiveOptions & { signal?: AbortSignal } = {},
): Promise<void> {
  type TOperation = K extends 'batch' ? BatchOperation : Operation;
  const maxEvents = options.maxEvents ?? 500;
  let state: OperationState<TOperation> = initialOperationState;
  const set = (change: Partial<OperationState<TOperation>>) => {
    state = { ...state, ...change };
    if (!options.signal?.aborted) onChange(state);
  };
  const watch = {
    afterSequence: 0,
    signal: options.signal,
    onConnectionChange: (connected: boolean) => set({ connected }),
  };
  const stream: AsyncIterable<OperationUpdate> =
    kind === 'batch' ? client.watchBatch(id, watch) : client.watchOperation(id, watch);
  return (async () => {
    try {
      for await (const update of stream) {
        const operation = update.operation as TOperation;
        const events = update.event ? [...state.events, update.event].slice(-maxEvents) : state.events;
        set({ operation, events, progress: operation.progress, status: operation.status });
      }
      if (!options.signal?.aborted) set({ done: true, connected: false });
    } catch (error) {
      set({ error: error instanceof Error ? error : new Error(String(error)), connected: false });
    }
  })();
}

/** What a live list of operations shows. */
export interface OperationsState {
  /** Newest first. */
  operations: Operation[];
  /** The first page is still loading. */
  loading: boolean;
  error: Error | null;
  /** The change stream is live. */
  connected: boolean;
}

export const initialOperationsState: OperationsState = {
  operations: [],
  loading: true,
  error: null,
  connected: false,
};

/** Puts `operation` into `list` (newest first), keeping whichever copy has the higher sequence. */
export function upsertOperation(list: Operation[], operation: Operation): Operation[] {
  const index = list.findIndex((item) => item.id === operation.id);
  if (index >= 0) {
    if (list[index]!.sequence >= operation.sequence) return list;
    const next = list.slice();
    next[index] = operation;
    return next;
  }
  const next = [...list, operation];
  next.sort((a, b) =>
    a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1,
  );
  return next;
}

/**
 * Drives a live list: subscribes to `operationsUpdated(filter)` first, then loads the newest
 * `first` (default 20) operations, and merges both by id (the copy with the higher sequence wins),
 * so no change made while the page loads is lost; the list keeps the newest `first`. An operation
 * that stops matching the filter (a status filter) is removed when its change arrives.
 */
export function watchOperationsState(
  client: OpsgraphClient,
  filter: OperationFilter | null | undefined,
  onChange: (state: OperationsState) => void,
  options: { first?: number; signal?: AbortSignal } = {},
): Promise<void> {
  let state = initialOperationsState;
  const set = (change: Partial<OperationsState>) => {
    state = { ...state, ...change };
    if (!options.signal?.aborted) onChange(state);
  };
  const first = options.first ?? 20;
  const statuses = filter?.status ?? [];
  const matches = (operation: Operation) => statuses.length === 0 || statuses.includes(operation.status);
  const live = (async () => {
    try {
      const stream = client.watchOperations(filter, {
        signal: options.signal,
        onConnectionChange: (connected) => set({ connected }),
        // Resubscribed with nothing to resume from: what changed meanwhile comes from a new page.
        onResync: () => void loadPage(),
      });
      for await (const { operation } of stream) {
        const operations = matches(operation)
          ? upsertOperation(state.operations, operation).slice(0, first)
          : state.operations.filter((item) => item.id !== operation.id);
        set({ operations });
      }
    } catch (error) {
      set({ error: error instanceof Error ? error : new Error(String(error)), connected: false });
    }
  })();
  async function loadPage(): Promise<void> {
    try {
      const result = await client.listOperations({ filter, first });
      let operations = state.operations;
      for (const edge of result.edges) operations = upsertOperation(operations, edge.node);
      set({ operations: operations.slice(0, first), loading: false });
    } catch (error) {
      set({ error: error instanceof Error ? error : new Error(String(error)), loading: false });
    }
  }
  const page = loadPage();
  return Promise.all([live, page]).then(() => undefined);
}
