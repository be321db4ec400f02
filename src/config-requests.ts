import { z } from 'zod';

/**
 * Request limits, WebSocket limits, tokens and browsers (issue 9, points 3, 8, 10): their part of
 * the Config, of the environment it is read from, and of the mapping between them.
 */
export interface RequestLimits {
  /** Largest query document, in UTF-8 bytes, checked before it is parsed. Default 65536 (64 KiB). */
  queryMaxBytes: number;
  /** Largest HTTP request body and WebSocket message, in bytes, checked before JSON parsing. Default 4194304 (4 MiB). */
  requestMaxBytes: number;
  /** Deepest selection nesting (introspection excluded). Default 15. */
  queryMaxDepth: number;
  /** Most aliases in one operation. Default 50. */
  queryMaxAliases: number;
  /** Most lexical tokens in one document, counted while parsing. Default 1000. */
  queryMaxTokens: number;
  /** Most directives in one operation. Default 50. */
  queryMaxDirectives: number;
  /** Most fields with one response name in one selection set (fragments flattened). Default 10. */
  queryMaxDuplicateFields: number;
  /** Highest cost: each field 1, a list's or connection's selection multiplied by its size (`first`/`last`, else its default page). Default 50000. */
  queryMaxCost: number;
  /** Parsed documents kept in the parse cache; their source texts together stay under `documentCacheBytes`. Default 1000. */
  documentCacheEntries: number;
  /** Total source bytes of the documents in the parse cache. Default 1048576 (1 MiB). */
  documentCacheBytes: number;
  /** WebSocket connections one user may hold on one instance. Default 10. */
  wsMaxConnectionsPerUser: number;
  /** WebSocket connections one instance accepts (authenticated or not). Default 10000. */
  wsMaxConnections: number;
  /** Subscriptions one WebSocket connection may run at once. Default 100. */
  wsMaxSubscriptionsPerConnection: number;
  /** Interval of WebSocket keep-alive pings, in ms; a peer that misses a pong is dropped. Default 30000. */
  wsKeepAliveMs: number;
  /** SSE subscription streams one user may hold on one instance. Default 100. */
  sseMaxStreamsPerUser: number;
  /** Origins browsers may call from (CORS); the server's own origin always may. Default: none. */
  corsOrigins: string[];
  /** Whether `http://localhost:<any port>` (and 127.0.0.1) may call too. Default: when NODE_ENV is not `production`. */
  corsAllowLocalhost: boolean;
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** The environment variables of {@link RequestLimits}, with their ranges and defaults. */
export const requestLimitsEnv = {
  NODE_ENV: z.string().optional(),
  OPSGRAPH_QUERY_MAX_BYTES: int(1024, 16 * 1024 * 1024).default(65_536),
  OPSGRAPH_REQUEST_MAX_BYTES: int(1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  OPSGRAPH_QUERY_MAX_DEPTH: int(1, 1000).default(15),
  OPSGRAPH_QUERY_MAX_ALIASES: int(0, 100_000).default(50),
  OPSGRAPH_QUERY_MAX_TOKENS: int(10, 10_000_000).default(1000),
  OPSGRAPH_QUERY_MAX_DIRECTIVES: int(0, 100_000).default(50),
  OPSGRAPH_QUERY_MAX_DUPLICATE_FIELDS: int(1, 100_000).default(10),
  OPSGRAPH_QUERY_MAX_COST: int(1, 1_000_000_000).default(50_000),
  OPSGRAPH_DOCUMENT_CACHE_ENTRIES: int(0, 1_000_000).default(1000),
  OPSGRAPH_DOCUMENT_CACHE_BYTES: int(0, 1024 * 1024 * 1024).default(1024 * 1024),
  OPSGRAPH_WS_MAX_CONNECTIONS_PER_USER: int(1, 1_000_000).default(10),
  OPSGRAPH_WS_MAX_CONNECTIONS: int(1, 10_000_000).default(10_000),
  OPSGRAPH_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: int(1, 1_000_000).default(100),
  OPSGRAPH_WS_KEEPALIVE_MS: int(100, 3_600_000).default(30_000),
  OPSGRAPH_SSE_MAX_STREAMS_PER_USER: int(1, 1_000_000).default(100),
  OPSGRAPH_CORS_ORIGINS: z
    .string()
    .transform((value) =>
      value
        .split(',')
        .map((origin) => origin.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.url({ protocol: /^https?$/ })))
    .optional(),
};

type Parsed = z.infer<z.ZodObject<typeof requestLimitsEnv>>;

/** RequestLimits from the parsed environment. */
export const requestLimits = (e: Parsed): RequestLimits => ({
  queryMaxBytes: e.OPSGRAPH_QUERY_MAX_BYTES,
  requestMaxBytes: e.OPSGRAPH_REQUEST_MAX_BYTES,
  queryMaxDepth: e.OPSGRAPH_QUERY_MAX_DEPTH,
  queryMaxAliases: e.OPSGRAPH_QUERY_MAX_ALIASES,
  queryMaxTokens: e.OPSGRAPH_QUERY_MAX_TOKENS,
  queryMaxDirectives: e.OPSGRAPH_QUERY_MAX_DIRECTIVES,
  queryMaxDuplicateFields: e.OPSGRAPH_QUERY_MAX_DUPLICATE_FIELDS,
  queryMaxCost: e.OPSGRAPH_QUERY_MAX_COST,
  documentCacheEntries: e.OPSGRAPH_DOCUMENT_CACHE_ENTRIES,
  documentCacheBytes: e.OPSGRAPH_DOCUMENT_CACHE_BYTES,
  wsMaxConnectionsPerUser: e.OPSGRAPH_WS_MAX_CONNECTIONS_PER_USER,
  wsMaxConnections: e.OPSGRAPH_WS_MAX_CONNECTIONS,
  wsMaxSubscriptionsPerConnection: e.OPSGRAPH_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION,
  wsKeepAliveMs: e.OPSGRAPH_WS_KEEPALIVE_MS,
  sseMaxStreamsPerUser: e.OPSGRAPH_SSE_MAX_STREAMS_PER_USER,
  corsOrigins: (e.OPSGRAPH_CORS_ORIGINS ?? []).map((origin) => new URL(origin).origin),
  corsAllowLocalhost: e.NODE_ENV !== 'production',
});
