/** One GraphQL request as the transports send it. */
export interface SubscribeRequest {
  query: string;
  variables: Record<string, unknown>;
  operationName?: string;
}

/**
 * One transport's way to run a subscription: an async iterable of each result's `data`. It
 * returns when the server completes the subscription, and throws what `errors.ts` makes of every
 * other end: `RetryableEnd` (dropped connection, server shutting down, subscriber too slow,
 * service unavailable…), `OpsgraphAuthError`, or `OpsgraphError`. A result carrying GraphQL errors
 * ends the iteration with that error, whether the transport reported it as a result (SSE) or
 * through its error sink (graphql-ws). `onOpen` is called once the subscription is live on an
 * open connection; leaving the loop (or `signal`) unsubscribes.
 */
export interface Transport {
  subscribe(
    request: SubscribeRequest,
    signal: AbortSignal | undefined,
    onOpen: () => void,
  ): AsyncIterable<unknown>;
  /** Closes the transport's connections; subscriptions end. */
  close(): void;
}

/** What a transport needs to authenticate. */
export interface TransportOptions {
  /** The GraphQL endpoint over HTTP(S), e.g. http://localhost:4000/graphql. */
  url: string;
  /** The bearer token for the next (re)connect; null for none. */
  token: () => Promise<string | null>;
}

export type ExecutionResultLike = { data?: unknown; errors?: readonly unknown[] | null };
