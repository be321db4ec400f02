// React hooks with the shapes of @opsgraph/client/react (CLIENT-CONTRACT.md), on the minimal client.
import { createContext, type ReactNode, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { OpsgraphClient } from './client.ts';
import {
  BATCH,
  BATCH_UPDATED,
  CANCEL_OPERATION,
  OPERATION,
  OPERATION_UPDATED,
  OPERATION_UPDATED_FULL,
  OPERATIONS,
  START_OPERATION,
} from './documents.ts';
import {
  type Operation,
  type OperationEvent,
  type OperationFilter,
  type Progress,
  TERMINAL,
} from './types.ts';

const ClientContext = createContext<OpsgraphClient | null>(null);

export function OpsgraphProvider({ client, children }: { client: OpsgraphClient; children: ReactNode }) {
  return <ClientContext.Provider value={client}>{children}</ClientContext.Provider>;
}

export function useOpsgraphClient(): OpsgraphClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error('useOpsgraphClient needs an <OpsgraphProvider>');
  return client;
}

/** True while the WebSocket is open. */
function useConnected(client: OpsgraphClient): boolean {
  const [connected, setConnected] = useState(false);
  useEffect(() => client.onConnected(setConnected), [client]);
  return connected;
}

export interface LiveOperation {
  operation: Operation | null;
  events: OperationEvent[];
  progress: Progress | null;
  status: Operation['status'] | null;
  error: Error | null;
  connected: boolean;
}

type Update = { sequence: number; event: OperationEvent | null; operation: Operation };

function useLive(id: string, batch: boolean): LiveOperation {
  const client = useOpsgraphClient();
  const connected = useConnected(client);
  const [operation, setOperation] = useState<Operation | null>(null);
  const [events, setEvents] = useState<OperationEvent[]>([]);
  const [error, setError] = useState<Error | null>(null);

  useEffect(() => {
    let stop: (() => void) | undefined;
    let cancelled = false;
    setOperation(null);
    setEvents([]);
    setError(null);
    type Loaded = { operation: (Operation & { events: OperationEvent[] }) | null };
    client.request<Loaded>(batch ? BATCH : OPERATION, { id }).then(
      ({ operation: loaded }) => {
        if (cancelled) return;
        if (!loaded) return setError(new Error('Not found, or not visible to you.'));
        const { events: history, ...rest } = loaded;
        setOperation(rest);
        setEvents(history);
        const field = batch ? 'batchUpdated' : 'operationUpdated';
        stop = client.subscribe<Record<string, Update>>(
          batch ? BATCH_UPDATED : OPERATION_UPDATED_FULL,
          { id, afterSequence: loaded.sequence },
          {
            next: (data) => {
              const update = data[field];
              if (!update) return;
              setOperation((old) => ({ ...old, ...update.operation }));
              const event = update.event;
              if (event)
                setEvents((old) => (old.some((e) => e.sequence === event.sequence) ? old : [...old, event]));
            },
            error: setError,
          },
        );
      },
      (failure: Error) => !cancelled && setError(failure),
    );
    return () => {
      cancelled = true;
      stop?.();
    };
  }, [client, id, batch]);

  return {
    operation,
    events,
    progress: operation?.progress ?? null,
    status: operation?.status ?? null,
    error,
    connected,
  };
}

/** One operation, live: its state, its events (history, then each new one) and its progress. */
export const useOperation = (id: string): LiveOperation => useLive(id, false);
/** One batch, live: like useOperation, with `operation.batchOutcome` (items and their status). */
export const useBatch = (id: string): LiveOperation => useLive(id, true);

/**
 * Operations matching `filter`, newest first, live: each unfinished one is watched (status and
 * progress change in place) and the list is queried again when one finishes and every 2 s (new
 * operations). `operationsUpdated` (one stream for the whole list) replaces this once it exists.
 */
export function useOperations(
  filter: OperationFilter,
  { first = 50 }: { first?: number } = {},
): { operations: Operation[]; error: Error | null; connected: boolean; loading: boolean } {
  const client = useOpsgraphClient();
  const connected = useConnected(client);
  const [operations, setOperations] = useState<Operation[]>([]);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const key = JSON.stringify(filter);
  const watched = useRef(new Map<string, () => void>());

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new filter shows "loading" again
  useEffect(() => {
    setLoading(true);
  }, [key]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick asks for the list again
  useEffect(() => {
    let cancelled = false;
    type Page = { operations: { edges: { node: Operation }[] } };
    client.request<Page>(OPERATIONS, { filter: JSON.parse(key), first }).then(
      (page) => {
        if (cancelled) return;
        setOperations(page.operations.edges.map((edge) => edge.node));
        setError(null);
        setLoading(false);
      },
      (failure: Error) => {
        if (cancelled) return;
        setError(failure);
        setLoading(false);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [client, key, first, tick]);

  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), 2000);
    return () => clearInterval(timer);
  }, []);

  // Watch each unfinished operation on screen; stop watching those gone or finished.
  useEffect(() => {
    const map = watched.current;
    const wanted = new Set(operations.filter((op) => !TERMINAL.has(op.status)).map((op) => op.id));
    for (const [id, stop] of map) {
      if (!wanted.has(id)) {
        stop();
        map.delete(id);
      }
    }
    for (const id of wanted) {
      if (map.has(id)) continue;
      const stop = client.subscribe<{ operationUpdated: Update }>(
        OPERATION_UPDATED,
        { id },
        {
          next: ({ operationUpdated }) => {
            const next = operationUpdated.operation;
            setOperations((old) => old.map((op) => (op.id === next.id ? { ...op, ...next } : op)));
            if (TERMINAL.has(next.status)) setTick((t) => t + 1);
          },
        },
      );
      map.set(id, stop);
    }
  }, [client, operations]);

  useEffect(() => {
    const map = watched.current;
    return () => {
      for (const stop of map.values()) stop();
      map.clear();
    };
  }, []);

  return { operations, error, connected, loading };
}

type Result = { __typename: string; message?: string; operation?: Operation };

function useMutation<A extends unknown[]>(run: (client: OpsgraphClient, ...args: A) => Promise<Result>) {
  const client = useOpsgraphClient();
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const runRef = useRef(run);
  runRef.current = run;
  const call = useCallback(
    async (...args: A) => {
      setLoading(true);
      setError(null);
      try {
        return await runRef.current(client, ...args);
      } catch (failure) {
        setError(failure as Error);
        throw failure;
      } finally {
        setLoading(false);
      }
    },
    [client],
  );
  return { call, loading, error };
}

export function useStartOperation() {
  const { call, loading, error } = useMutation(async (client, input: { type: string; input: unknown }) => {
    const data = await client.request<{ startOperation: Result }>(START_OPERATION, { input });
    return data.startOperation;
  });
  return { start: call, loading, error };
}

export function useCancelOperation() {
  const { call, loading, error } = useMutation(async (client, id: string, reason?: string) => {
    const data = await client.request<{ cancelOperation: Result }>(CANCEL_OPERATION, { id, reason });
    return data.cancelOperation;
  });
  return { cancel: call, loading, error };
}
