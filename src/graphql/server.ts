import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError } from 'graphql';
import { createYoga, type YogaInitialContext } from 'graphql-yoga';
import { createViewerResolver, InvalidTokenError } from '../auth/viewer.ts';
import { withDashboard } from '../dashboard/static.ts';
import { isConnectionError } from '../db/unavailable.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { withOperatorRoutes } from '../health/routes.ts';
import { countRefusals, useMetrics } from '../metrics/graphql.ts';
import { LiveListError } from '../operations/live-updates.ts';
import { ResubscribeError, SHARED_UPDATE_FIELDS } from '../operations/updates.ts';
import type { Resources } from '../resources.ts';
import { corsFor, useCsrfPrevention } from './browser.ts';
import { useSlicedCoercion } from './coerce.ts';
import type { Context } from './context.ts';
import { createCostCheck, useQueryCost } from './cost.ts';
import { createDocumentCache } from './document-cache.ts';
import { createGraphiQLRenderer, GRAPHIQL_OPTIONS } from './graphiql.ts';
import { withHygiene } from './hygiene.ts';
import { useDocumentLimits, useQuerySizeLimit, useRequestSizeLimit } from './limits.ts';
import { schema } from './schema.ts';
import { useSharedSubscriptionExecution } from './shared-execution.ts';
import { useSseStreamLimit } from './streams.ts';
import { startWebSocketServer } from './websocket.ts';

export interface GraphQLServer {
  url: string;
  close(): Promise<void>;
}

/** Codes for domain errors that reach clients as GraphQL errors (queries and subscriptions). */
const EXPOSED: [new (...args: never[]) => Error, string][] = [
  [ValidationError, 'BAD_USER_INPUT'],
  [NotFoundError, 'NOT_FOUND'],
  [ForbiddenError, 'FORBIDDEN'],
  [InvalidTokenError, 'UNAUTHENTICATED'],
];

/** Seconds a client is told to wait before retrying while the database is unreachable. */
const RETRY_AFTER_SECONDS = 2;

/**
 * Keeps GraphQLErrors and known domain errors; turns "the database is unreachable" into a
 * retryable SERVICE_UNAVAILABLE (HTTP 503 with Retry-After when the whole request failed on it);
 * masks everything else with a stable code.
 */
function maskError(error: unknown, message: string, resources: Resources): GraphQLError {
  const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
  if (original instanceof GraphQLError) return original;
  for (const [type, code] of EXPOSED) {
    if (original instanceof type) {
      const extensions: Record<string, unknown> = { code };
      if (original instanceof ValidationError) {
        extensions.problems = original.problems;
        if (original.omittedProblems) extensions.omittedProblems = original.omittedProblems;
      }
      return new GraphQLError(original.message, { extensions });
    }
  }
  if (original instanceof ResubscribeError) {
    return new GraphQLError(original.message, {
      extensions: { code: original.code, retryable: true, afterSequence: original.afterSequence },
    });
  }
  if (original instanceof LiveListError) {
    const retryable = original.code !== 'RESYNC_REQUIRED';
    return new GraphQLError(original.message, {
      extensions: { code: original.code, retryable, ...(original.after ? { after: original.after } : {}) },
    });
  }
  if (isConnectionError(original)) {
    resources.logger.warn('request failed: database unavailable', { error: (original as Error).message });
    return new GraphQLError('The service is temporarily unavailable (database unreachable); retry shortly.', {
      extensions: {
        code: 'SERVICE_UNAVAILABLE',
        retryable: true,
        http: { status: 503, headers: { 'retry-after': String(RETRY_AFTER_SECONDS) } },
      },
    });
  }
  resources.logger.error('unexpected error', { error: original });
  return new GraphQLError(message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/**
 * Serves GraphQL over HTTP (with GraphiQL), WebSocket (graphql-ws) and SSE on `/graphql`, and the
 * built dashboard at `/ui`.
 */
export async function startGraphQLServer(resources: Resources): Promise<GraphQLServer> {
  const { config, db } = resources;
  const viewerOf = createViewerResolver(db, config.jwtSecret);
  const viewerFrom = async (authorization: string | null | undefined) => {
    try {
      return await viewerOf(authorization);
    } catch (error) {
      if (error instanceof InvalidTokenError) {
        throw new GraphQLError(error.message, {
          extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } },
        });
      }
      throw error;
    }
  };

  const cache = { maxEntries: config.documentCacheEntries, maxBytes: config.documentCacheBytes };
  const checkCost = createCostCheck({ maxCost: config.queryMaxCost });
  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    graphiql: GRAPHIQL_OPTIONS,
    renderGraphiQL: createGraphiQLRenderer(),
    logging: false,
    cors: corsFor({ origins: config.corsOrigins, allowLocalhost: config.corsAllowLocalhost }),
    // Bounded here by useRequestSizeLimit (same checks, with limit and measured in the error).
    maxRequestBodySize: false,
    // Parsed documents and parse errors by query text, bounded by entries and total text size.
    parserAndValidationCache: {
      documentCache: createDocumentCache(cache),
      errorCache: createDocumentCache(cache),
    },
    plugins: [
      // First: the plugins below that wrap subscribeFn wrap this one.
      useSharedSubscriptionExecution({ fields: SHARED_UPDATE_FIELDS }),
      useCsrfPrevention(),
      useRequestSizeLimit({ maxBytes: config.requestMaxBytes }),
      useQuerySizeLimit({ maxBytes: config.queryMaxBytes }),
      useDocumentLimits({
        maxTokens: config.queryMaxTokens,
        maxDepth: config.queryMaxDepth,
        maxAliases: config.queryMaxAliases,
        maxDirectives: config.queryMaxDirectives,
        maxDuplicateFields: config.queryMaxDuplicateFields,
      }),
      useQueryCost(checkCost),
      useSlicedCoercion(),
      useSseStreamLimit({ maxPerUser: config.sseMaxStreamsPerUser }),
      useMetrics(resources.metrics),
    ],
    maskedErrors: {
      maskError: withHygiene((error, message) => maskError(error, message, resources), resources),
    },
    // Without awaiting when the viewer is known (no token, or a token seen in the last seconds):
    // most requests then build their context in the turn they arrived in, without three promises.
    context: (initial: YogaInitialContext & { viewer?: Context['viewer'] }) => {
      if (initial.viewer !== undefined) return { resources, viewer: initial.viewer };
      const authorization = initial.request.headers.get('authorization');
      const known = viewerOf.known(authorization);
      if (known !== undefined) return { resources, viewer: known };
      return viewerFrom(authorization).then((viewer) => ({ resources, viewer }));
    },
  });

  const server = createServer(withOperatorRoutes(resources, withDashboard(config.dashboardDir, yoga)));
  const ws = startWebSocketServer(server, yoga, viewerOf, {
    maxConnectionsPerUser: config.wsMaxConnectionsPerUser,
    maxConnections: config.wsMaxConnections,
    maxSubscriptionsPerConnection: config.wsMaxSubscriptionsPerConnection,
    keepAliveMs: config.wsKeepAliveMs,
    maxPayloadBytes: config.requestMaxBytes,
    queryMaxBytes: config.queryMaxBytes,
    checkCost,
    logger: resources.logger,
    onErrors: (errors) => countRefusals(resources.metrics, errors),
  });
  resources.metrics.sources.wsConnections = ws.connections;

  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  const { port } = server.address() as AddressInfo;
  const host = config.host === '0.0.0.0' ? 'localhost' : config.host;
  return {
    url: `http://${host}:${port}/graphql`,
    async close() {
      await ws.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
