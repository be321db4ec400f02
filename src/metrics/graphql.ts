import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { boundedNames, type Metrics } from './metrics.ts';

/**
 * The refusals counted in `opsgraph_refusals_total`, by the code clients see: request limits
 * (src/graphql/limits.ts, cost.ts), stream and subscription limits (streams.ts, websocket.ts),
 * WebSocket connection limits, and per-user quotas (src/quotas/). Other errors are not refusals.
 */
export const REFUSAL_CODES = new Set([
  'REQUEST_TOO_LARGE',
  'QUERY_TOO_LARGE',
  'TOO_MANY_TOKENS',
  'QUERY_TOO_DEEP',
  'TOO_MANY_ALIASES',
  'TOO_MANY_DIRECTIVES',
  'QUERY_TOO_COMPLEX',
  'TOO_MANY_DUPLICATE_FIELDS',
  'TOO_MANY_STREAMS',
  'TOO_MANY_SUBSCRIPTIONS',
  'WS_TOO_MANY_CONNECTIONS_PER_USER',
  'WS_TOO_MANY_CONNECTIONS',
  'ACTIVE_OPERATIONS',
  'STARTS_PER_MINUTE',
]);

/** An error as far as counting refusals goes (a GraphQLError, or a code alone). */
export type WithCode = { readonly extensions?: { readonly [key: string]: unknown } | null };

/** Counts the refusals among `errors` (and nothing else) by their code. */
export function countRefusals(m: Metrics, errors: readonly WithCode[] | undefined): void {
  for (const error of errors ?? []) {
    const code = error.extensions?.code;
    if (typeof code === 'string' && REFUSAL_CODES.has(code)) m.refusals.inc({ limit: code });
  }
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> =>
  typeof value === 'object' && value !== null && Symbol.asyncIterator in value;

interface Timing {
  /** performance.now() when the request arrived. */
  start: number;
  operation?: string;
  kind?: string;
}

/**
 * The GraphQL side of /metrics, as a Yoga plugin: each HTTP request's duration by operation name
 * (bounded: {@link boundedNames}; only authenticated requests add names) and kind, until its response starts (an SSE stream: until it
 * opens); subscriptions running (over WebSocket and SSE) until they end; and refusals by limit in
 * the results. Place it after the limit plugins.
 */
export function useMetrics(m: Metrics): Plugin {
  const timings = new WeakMap<Request, Timing>();
  const names = boundedNames();
  // The histogram's child per label pair, made once: prom-client's timer merges the labels into a
  // new object and reads the clock twice per request. Bounded: names by boundedNames, four kinds.
  const observers = new Map<string, { observe(seconds: number): void }>();
  const observerOf = (operation: string, kind: string) => {
    const key = `${operation} ${kind}`;
    let observer = observers.get(key);
    if (!observer) {
      observer = m.graphqlDuration.labels({ operation, kind });
      observers.set(key, observer);
    }
    return observer;
  };
  const note = (args: {
    document: Parameters<typeof getOperationAST>[0];
    operationName?: string | null;
    contextValue: unknown;
  }) => {
    const context = args.contextValue as { request?: Request; viewer?: unknown };
    const request = context.request;
    const timing = request && timings.get(request);
    if (!timing) return;
    const operation = getOperationAST(args.document, args.operationName);
    timing.operation = names(operation?.name?.value, Boolean(context.viewer));
    timing.kind = operation?.operation ?? 'none';
  };
  return {
    onRequest({ request }) {
      timings.set(request, { start: performance.now() });
    },
    onExecute({ args }) {
      note(args);
    },
    onSubscribe({ args }) {
      note(args);
      const transport = (args.contextValue as { socket?: unknown }).socket ? 'ws' : 'sse';
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) return;
          m.subscriptions.inc({ transport });
          let ended = false;
          return {
            onEnd() {
              if (ended) return;
              ended = true;
              m.subscriptions.dec({ transport });
            },
          };
        },
      };
    },
    onResultProcess({ result }) {
      for (const one of Array.isArray(result) ? result : [result]) {
        if (!isAsyncIterable(one)) countRefusals(m, one.errors);
      }
    },
    onResponse({ request }) {
      const timing = timings.get(request);
      if (!timing) return;
      timings.delete(request);
      observerOf(timing.operation ?? 'none', timing.kind ?? 'none').observe(
        (performance.now() - timing.start) / 1000,
      );
    },
  };
}
