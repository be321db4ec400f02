import { useCallback, useEffect, useRef, useState } from 'react';
import {
  initialOperationState,
  initialOperationsState,
  type LiveOptions,
  type OperationState,
  type OperationsState,
  watchOperationState,
  watchOperationsState,
} from '../live.js';
import type {
  BatchOperation,
  CancelOperationResult,
  Operation,
  OperationFilter,
  StartOperationInput,
  StartOperationResult,
} from '../types.js';
import { useOpsgraphClient } from './context.js';

export type UseOperationResult = Omit<OperationState<Operation>, 'done'>;
export type UseBatchResult = Omit<OperationState<BatchOperation>, 'done'>;

function useLive<K extends 'operation' | 'batch'>(
  id: string | null | undefined,
  kind: K,
  options: LiveOptions,
) {
  const client = useOpsgraphClient();
  const [state, setState] =
    useState<OperationState<K extends 'batch' ? BatchOperation : Operation>>(initialOperationState);
  const { maxEvents } = options;
  useEffect(() => {
    setState(initialOperationState);
    if (!id) return;
    const controller = new AbortController();
    void watchOperationState(client, id, kind, setState, { maxEvents, signal: controller.signal });
    return () => controller.abort();
  }, [client, id, kind, maxEvents]);
  const { done: _, ...result } = state;
  return result;
}

/**
 * One operation, live: `operation` (latest state), `events` (in order, the latest
 * `options.maxEvents`, default 500), `progress`, `status`, `error` (OpsgraphAuthError /
 * OpsgraphError; reconnects are handled inside), `connected`. Unsubscribes on unmount or when `id`
 * changes; a null id watches nothing.
 */
export function useOperation(id: string | null | undefined, options: LiveOptions = {}): UseOperationResult {
  return useLive(id, 'operation', options);
}

/** Like useOperation, for a batch: `operation.batchOutcome` holds each item's status, live. */
export function useBatch(id: string | null | undefined, options: LiveOptions = {}): UseBatchResult {
  return useLive(id, 'batch', options);
}

/**
 * The newest `first` (default 20) operations matching `filter`, kept live by `operationsUpdated`.
 * The filter is compared by value: an inline object literal does not resubscribe on every render.
 */
export function useOperations(
  filter?: OperationFilter | null,
  options: { first?: number } = {},
): OperationsState {
  const client = useOpsgraphClient();
  const [state, setState] = useState<OperationsState>(initialOperationsState);
  const key = JSON.stringify(filter ?? null);
  const { first } = options;
  useEffect(() => {
    setState(initialOperationsState);
    const controller = new AbortController();
    void watchOperationsState(client, JSON.parse(key) as OperationFilter | null, setState, {
      first,
      signal: controller.signal,
    });
    return () => controller.abort();
  }, [client, key, first]);
  return state;
}

/** A mutation's call state: `run` resolves with its result (or rejects, also setting `error`). */
function useMutation<TArgs extends unknown[], TResult>(call: (...args: TArgs) => Promise<TResult>) {
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const pending = useRef(0);
  const run = useCallback(
    async (...args: TArgs) => {
      pending.current += 1;
      setLoading(true);
      setError(null);
      try {
        return await call(...args);
      } catch (caught) {
        setError(caught instanceof Error ? caught : new Error(String(caught)));
        throw caught;
      } finally {
        pending.current -= 1;
        if (pending.current === 0) setLoading(false);
      }
    },
    [call],
  );
  return { run, loading, error };
}

/**
 * `start(input)` → the typed StartOperationResult union (check `__typename`); `loading` while a
 * start is in flight; `error` for a failed request (OpsgraphAuthError, OpsgraphError).
 */
export function useStartOperation(): {
  start: (input: StartOperationInput) => Promise<StartOperationResult>;
  loading: boolean;
  error: Error | null;
} {
  const client = useOpsgraphClient();
  const call = useCallback((input: StartOperationInput) => client.startOperation(input), [client]);
  const { run, loading, error } = useMutation(call);
  return { start: run, loading, error };
}

/** `cancel(id, reason?)` → the typed CancelOperationResult union; `loading`; `error`. */
export function useCancelOperation(): {
  cancel: (id: string, reason?: string) => Promise<CancelOperationResult>;
  loading: boolean;
  error: Error | null;
} {
  const client = useOpsgraphClient();
  const call = useCallback((id: string, reason?: string) => client.cancelOperation(id, reason), [client]);
  const { run, loading, error } = useMutation(call);
  return { cancel: run, loading, error };
}
