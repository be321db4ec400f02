// A minimal client with the shape of @opsgraph/client (CLIENT-CONTRACT.md): plain queries over HTTP,
// subscriptions over one graphql-ws WebSocket. Used until the client package is merged.
import { createClient as createWsClient } from 'graphql-ws';

export interface GraphQLErrorLike {
  message: string;
  extensions?: { code?: string };
}

export class OpsgraphError extends Error {
  override name = 'OpsgraphError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Fatal authentication failure (bad or expired token). */
export class OpsgraphAuthError extends OpsgraphError {
  override name = 'OpsgraphAuthError';
}

export interface OpsgraphClient {
  request<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
  /** Calls `next` with each message's data until the returned function is called. */
  subscribe<T>(
    query: string,
    variables: Record<string, unknown>,
    sink: { next(data: T): void; error?(error: Error): void; complete?(): void },
  ): () => void;
  onConnected(listener: (connected: boolean) => void): () => void;
  close(): void;
}

function errorOf(errors: readonly GraphQLErrorLike[]): OpsgraphError {
  const first = errors[0];
  const code = first?.extensions?.code;
  const message = first?.message ?? 'request failed';
  return code === 'UNAUTHENTICATED' ? new OpsgraphAuthError(message, code) : new OpsgraphError(message, code);
}

export function createClient({ url, token }: { url: string; token: string }): OpsgraphClient {
  const listeners = new Set<(connected: boolean) => void>();
  const emit = (connected: boolean) => {
    for (const listener of listeners) listener(connected);
  };
  const ws = createWsClient({
    url: url.replace(/^http/, 'ws'),
    connectionParams: { authorization: `Bearer ${token}` },
    lazy: true,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: (event) => !(event instanceof CloseEvent && event.code === 4401),
    on: { connected: () => emit(true), closed: () => emit(false) },
  });
  return {
    async request<T>(query: string, variables: Record<string, unknown> = {}) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json().catch(() => ({}))) as { data?: T; errors?: GraphQLErrorLike[] };
      if (body.errors?.length) throw errorOf(body.errors);
      if (!response.ok || body.data === undefined) throw new OpsgraphError(`HTTP ${response.status}`);
      return body.data;
    },
    subscribe(query, variables, sink) {
      return ws.subscribe(
        { query, variables },
        {
          next: (message) => {
            if (message.errors?.length) sink.error?.(errorOf(message.errors as GraphQLErrorLike[]));
            else if (message.data) sink.next(message.data as never);
          },
          error: (error) => {
            const close = error instanceof CloseEvent ? error : undefined;
            if (close?.code === 4401) sink.error?.(new OpsgraphAuthError(close.reason || 'unauthenticated'));
            else if (Array.isArray(error)) sink.error?.(errorOf(error as GraphQLErrorLike[]));
            else sink.error?.(new OpsgraphError(close?.reason || 'connection failed'));
          },
          complete: () => sink.complete?.(),
        },
      );
    },
    onConnected(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      void ws.dispose();
    },
  };
}
