import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type YogaInitialContext } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { createViewerResolver, InvalidTokenError } from '../auth/viewer.ts';
import { isConnectionError } from '../db/unavailable.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { withOperatorRoutes } from '../health/routes.ts';
import { ResubscribeError } from '../operations/updates.ts';
import type { Resources } from '../resources.ts';
import type { Context } from './context.ts';
import { withHygiene } from './hygiene.ts';
import { schema } from './schema.ts';

type Enveloped = {
  execute: (args: unknown) => ReturnType<typeof import('graphql').execute>;
  subscribe: (args: unknown) => ReturnType<typeof import('graphql').subscribe>;
};

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

/** An error as sent over WebSocket: without `extensions.http`, which only HTTP responses use. */
function withoutHttp(error: GraphQLError): GraphQLFormattedError {
  const formatted = error.toJSON();
  if (!formatted.extensions || !('http' in formatted.extensions)) return formatted;
  const { http: _, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}

/** Serves GraphQL over HTTP (with GraphiQL), WebSocket (graphql-ws) and SSE on `/graphql`. */
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

  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    graphiql: {
      title: 'opsgraph',
      // SSE carries the Headers tab (Authorization) on every subscription request.
      subscriptionsProtocol: 'SSE',
      defaultQuery:
        '# Set the header {"Authorization": "Bearer <token from npm run token>"}\n{ viewer { name } operationTypes { name description } }\n',
    },
    logging: false,
    maskedErrors: {
      maskError: withHygiene((error, message) => maskError(error, message, resources), resources),
    },
    context: async (initial: YogaInitialContext & { viewer?: Context['viewer'] }) => ({
      resources,
      viewer:
        initial.viewer !== undefined
          ? initial.viewer
          : await viewerFrom(initial.request.headers.get('authorization')),
    }),
  });

  const server = createServer(withOperatorRoutes(resources, yoga));
  const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const wsCleanup = useServer(
    {
      // Yoga's enveloped execute/subscribe travel in rootValue (set in onSubscribe below).
      execute: (args) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: result.errors.map(withoutHttp) } : undefined,
      onError: (_ctx, _id, _payload, errors) => errors.map(withoutHttp),
      onConnect: async (ctx) => {
        const authorization = (ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization) as
          | string
          | undefined;
        try {
          (ctx.extra as { viewer?: unknown }).viewer = await viewerOf(authorization);
          return true;
        } catch (error) {
          if (isConnectionError(error)) {
            // 1013 "Try Again Later": graphql-ws clients retry it; 4403 would read as a bad token.
            ctx.extra.socket.close(1013, 'database unavailable; retry shortly');
          }
          return false; // closes with 4403 Forbidden (unless already closed above)
        }
      },
      onSubscribe: async (ctx, _id, payload) => {
        const {
          schema: s,
          execute,
          subscribe,
          contextFactory,
          parse,
          validate,
        } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          viewer: (ctx.extra as { viewer?: unknown }).viewer ?? null,
        });
        const args = {
          schema: s,
          operationName: payload.operationName,
          document: parse(payload.query),
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        return args;
      },
    },
    wsServer,
  );

  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  const { port } = server.address() as AddressInfo;
  const host = config.host === '0.0.0.0' ? 'localhost' : config.host;
  return {
    url: `http://${host}:${port}/graphql`,
    async close() {
      for (const client of wsServer.clients) client.close(1001, 'server shutting down');
      await wsCleanup.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
