import { createClient } from 'graphql-ws';
import { fromClose, fromGraphQLErrors, type GraphQLErrorLike, RetryableEnd } from '../errors.js';
import { channel } from './channel.js';
import type { ExecutionResultLike, Transport, TransportOptions } from './types.js';

/** What graphql-ws hands its error sink when the socket closes. */
const isCloseEvent = (value: unknown): value is { code: number; reason: string } =>
  typeof value === 'object' && value !== null && typeof (value as { code?: unknown }).code === 'number';

/** Normalizes what graphql-ws's error sink receives into the client's errors. */
function normalize(error: unknown): unknown {
  if (Array.isArray(error)) return fromGraphQLErrors(error as GraphQLErrorLike[]);
  if (isCloseEvent(error)) return fromClose(error.code, error.reason);
  // An 'error' Event of the socket (refused, reset) or a failing token getter: the socket is gone.
  const message = error instanceof Error ? error.message : 'WebSocket error';
  return new RetryableEnd(message, 'NETWORK_ERROR');
}

/**
 * graphql-ws over one shared, lazy WebSocket: opened on the first subscription, closed when none
 * is left, authenticated in connection_init with the token `options.token` gives at each connect.
 * graphql-ws's own retries are off: the resume loop retries, with the position it has reached.
 * Every `pingIntervalMs` the client pings; a connection that does not answer within half that is
 * terminated (4499) and so resumed — a silently dropped connection is noticed, not waited on forever.
 */
export function webSocketTransport(options: TransportOptions & { pingIntervalMs?: number }): Transport {
  const opened = new Set<() => void>();
  let connected = false;
  const pingIntervalMs = options.pingIntervalMs ?? 10_000;
  let socket: WebSocket | undefined;
  let pongTimer: ReturnType<typeof setTimeout> | undefined;
  const client = createClient({
    url: options.url.replace(/^http/, 'ws'),
    lazy: true,
    retryAttempts: 0,
    shouldRetry: () => false,
    connectionParams: async () => {
      const token = await options.token();
      return token ? { authorization: `Bearer ${token}` } : {};
    },
    keepAlive: pingIntervalMs,
    on: {
      connected: (connectedSocket) => {
        socket = connectedSocket as WebSocket;
        connected = true;
        for (const open of opened) open();
      },
      closed: () => {
        clearTimeout(pongTimer);
        socket = undefined;
        connected = false;
      },
      ping: (received) => {
        if (received) return;
        clearTimeout(pongTimer);
        const pinged = socket;
        // terminate(): a close handshake would wait on the silent peer too; this ends it now (4499).
        pongTimer = setTimeout(() => {
          if (pinged === socket) client.terminate();
        }, pingIntervalMs / 2);
      },
      pong: (received) => {
        if (received) clearTimeout(pongTimer);
      },
    },
  });
  return {
    subscribe(request, signal, onOpen) {
      let stop: (() => void) | undefined;
      const open = () => {
        opened.delete(open);
        onOpen();
      };
      const { push, end, iterator } = channel<unknown>(() => {
        opened.delete(open);
        signal?.removeEventListener('abort', abort);
        stop?.();
      });
      const abort = () => void iterator.return?.();
      const finish = (error?: unknown) => {
        opened.delete(open);
        signal?.removeEventListener('abort', abort);
        end(error);
      };
      if (signal?.aborted) {
        end();
        return iterator;
      }
      signal?.addEventListener('abort', abort, { once: true });
      stop = client.subscribe<unknown>(request, {
        next: (result: ExecutionResultLike) => {
          if (result.errors?.length) finish(fromGraphQLErrors(result.errors as GraphQLErrorLike[]));
          else push(result.data);
        },
        error: (error) => finish(normalize(error)),
        complete: () => finish(),
      });
      if (connected) queueMicrotask(open);
      else opened.add(open);
      return iterator;
    },
    close() {
      void client.dispose();
    },
  };
}
