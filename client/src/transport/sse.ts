import { createClient, NetworkError } from 'graphql-sse';
import { fromGraphQLErrors, fromHttpStatus, type GraphQLErrorLike, RetryableEnd } from '../errors.js';
import { channel } from './channel.js';
import type { ExecutionResultLike, Transport, TransportOptions } from './types.js';

/** The GraphQL errors in a refused response's body, if it has any. */
async function errorsOf(response: Response): Promise<GraphQLErrorLike[]> {
  try {
    const body = (await response.json()) as { errors?: GraphQLErrorLike[] };
    return Array.isArray(body.errors) ? body.errors : [];
  } catch {
    return [];
  }
}

/** Normalizes what graphql-sse's error sink receives into the client's errors. */
async function normalize(error: unknown): Promise<unknown> {
  if (error instanceof NetworkError) {
    const response = error.response as Response | undefined;
    if (response) return fromHttpStatus(response.status, await errorsOf(response));
    return new RetryableEnd(error.message, 'NETWORK_ERROR');
  }
  // graphql-sse reports a cut stream as a NetworkError; anything else is a parse or protocol fault.
  return error;
}

/**
 * GraphQL over SSE in graphql-sse's "distinct connections" mode: one HTTP request per
 * subscription, authenticated with the Authorization header `options.token` gives at each
 * (re)connect. graphql-sse's own retries are off: the resume loop retries.
 */
export function sseTransport(options: TransportOptions): Transport {
  const disposers = new Set<() => void>();
  return {
    subscribe(request, signal, onOpen) {
      let opened = false;
      const client = createClient({
        url: options.url,
        singleConnection: false,
        retryAttempts: 0,
        headers: async (): Promise<Record<string, string>> => {
          const token = await options.token();
          return token ? { authorization: `Bearer ${token}` } : {};
        },
        // The stream is live once the server answered 200 to the request.
        fetchFn: async (input: RequestInfo | URL, init?: RequestInit) => {
          const response = await fetch(input, init);
          if (response.ok && !opened) {
            opened = true;
            onOpen();
          }
          return response;
        },
      });
      let stop: (() => void) | undefined;
      const dispose = () => {
        disposers.delete(dispose);
        signal?.removeEventListener('abort', abort);
        stop?.();
        client.dispose();
      };
      const { push, end, iterator } = channel<unknown>(dispose);
      const abort = () => void iterator.return?.();
      const finish = (error?: unknown) => {
        disposers.delete(dispose);
        signal?.removeEventListener('abort', abort);
        end(error);
      };
      if (signal?.aborted) {
        end();
        return iterator;
      }
      signal?.addEventListener('abort', abort, { once: true });
      disposers.add(dispose);
      stop = client.subscribe<unknown>(request, {
        next: (result: ExecutionResultLike) => {
          // SSE sends a stream's GraphQL errors as a result, then completes.
          if (result.errors?.length) finish(fromGraphQLErrors(result.errors as GraphQLErrorLike[]));
          else push(result.data);
        },
        error: (error) => void normalize(error).then(finish),
        complete: () => finish(),
      });
      return iterator;
    },
    close() {
      for (const dispose of [...disposers]) dispose();
    },
  };
}
