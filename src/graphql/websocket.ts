import type { Server } from 'node:http';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Context as WsContext } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import { InvalidTokenError, type Session, type ViewerResolver } from '../auth/viewer.ts';
import { isConnectionError } from '../db/unavailable.ts';
import type { Logger } from '../logger.ts';
import type { Context } from './context.ts';
import type { CostCheck } from './cost.ts';
import { checkQuerySize } from './limits.ts';

/**
 * Close codes sent to graphql-ws clients. 4401 and 4429 are in graphql-ws's fatal list: its client
 * does not retry them and hands the close event to the app at once (4403, its default for a
 * refused connection, is retried for ~40 s). 1013 is retried with backoff a few times.
 */
export const CLOSE = {
  /** No token, a bad one, or one that expired while connected. */
  unauthorized: 4401,
  /** The user already holds `maxConnectionsPerUser` connections on this instance. */
  tooManyConnections: 4429,
  /** The instance holds `maxConnections` sockets, or the database is unreachable: retry later. */
  tryAgainLater: 1013,
} as const;

export interface WebSocketOptions {
  /** Connections one user may hold on this instance. */
  maxConnectionsPerUser: number;
  /** Sockets this instance accepts at once (before authentication too). */
  maxConnections: number;
  /** Subscriptions (and queries) one connection may run at once. */
  maxSubscriptionsPerConnection: number;
  /** Ping interval in ms; a peer that has not answered the previous ping by the next is dropped. */
  keepAliveMs: number;
  /** Largest message in bytes (the HTTP body limit); a larger one closes the socket with 1009. */
  maxPayloadBytes: number;
  /** Largest query text in bytes, checked before parsing. */
  queryMaxBytes: number;
  /** The cost check HTTP requests use. */
  checkCost: CostCheck;
  /** Where refused messages are noted (at warn: they are client input, not server faults). */
  logger: Logger;
  /**
   * Called with the errors a subscribe was answered with, and with a code for each refused
   * connection (`WS_TOO_MANY_CONNECTIONS`, `WS_TOO_MANY_CONNECTIONS_PER_USER`): the metrics count
   * the refusals among them. Default: nothing.
   */
  onErrors?: (
    errors: readonly { readonly extensions?: { readonly [key: string]: unknown } | null }[],
  ) => void;
}

type Enveloped = {
  execute: (args: unknown) => ReturnType<typeof import('graphql').execute>;
  subscribe: (args: unknown) => ReturnType<typeof import('graphql').subscribe>;
};

/** What one connection carries besides graphql-ws's own state. */
interface Extra extends Record<PropertyKey, unknown> {
  socket: WebSocket;
  request: unknown;
  session?: Session;
  expiry?: { timer?: NodeJS.Timeout };
}

/** setTimeout for delays beyond its 24.8-day maximum (tokens live 30 days by default). */
function at(time: number, run: () => void, handle: { timer?: NodeJS.Timeout }) {
  const delay = time - Date.now();
  const MAX = 2 ** 31 - 1;
  handle.timer = setTimeout(
    () => (delay > MAX ? at(time, run, handle) : run()),
    Math.max(0, Math.min(delay, MAX)),
  );
  handle.timer.unref();
}

/** An error as sent over WebSocket: without `extensions.http`, which only HTTP responses use. */
export function withoutHttp(error: GraphQLError): GraphQLFormattedError {
  const formatted = error.toJSON();
  if (!formatted.extensions || !('http' in formatted.extensions)) return formatted;
  const { http: _, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}

/** A syntax error's message, cut short so a long token is never echoed back whole. */
const safe = (error: GraphQLError) =>
  new GraphQLError(error.message.length <= 200 ? error.message : `${error.message.slice(0, 200)}…`, {
    extensions: { code: 'GRAPHQL_PARSE_FAILED', ...error.extensions },
  });

/**
 * graphql-ws on `path` of `server`: every connection authenticates in `connection_init` (else
 * 4401), is counted against its user's and the instance's limits, is pinged, and is closed with
 * 4401 the moment its token expires. A subscribe with a bad document (syntax, validation, a
 * limit, too many subscriptions) fails that subscription only.
 */
export function startWebSocketServer(
  server: Server,
  yoga: YogaServerInstance<Record<string, unknown>, Context>,
  sessions: ViewerResolver,
  options: WebSocketOptions,
) {
  const wsServer = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    maxPayload: options.maxPayloadBytes,
  });
  const perUser = new Map<string, number>();
  const refused = (code: string) => options.onErrors?.([{ extensions: { code } }]);
  wsServer.on('connection', (socket) => {
    if (wsServer.clients.size > options.maxConnections) {
      refused('WS_TOO_MANY_CONNECTIONS');
      socket.close(
        CLOSE.tryAgainLater,
        `Server at its connection limit (${options.maxConnections}); retry later`,
      );
    }
  });
  const release = (extra: Extra) => {
    clearTimeout(extra.expiry?.timer);
    const userId = extra.session?.viewer.id;
    if (!userId) return;
    extra.session = undefined;
    const left = (perUser.get(userId) ?? 1) - 1;
    if (left > 0) perUser.set(userId, left);
    else perUser.delete(userId);
  };
  const cleanup = useServer<Record<string, unknown> | undefined, Extra>(
    {
      // Yoga's enveloped execute/subscribe travel in rootValue (set in onSubscribe below).
      execute: (args) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: result.errors.map(withoutHttp) } : undefined,
      onError: (_ctx, _id, _payload, errors) => {
        options.onErrors?.(errors);
        return errors.map(withoutHttp);
      },
      onConnect: async (ctx) => {
        const { socket } = ctx.extra;
        const authorization = (ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization) as
          | string
          | undefined;
        if (!authorization) {
          socket.close(CLOSE.unauthorized, 'Authentication required: send connectionParams.authorization');
          return false;
        }
        let session: Session | null;
        try {
          session = await sessions.session(authorization);
        } catch (error) {
          if (isConnectionError(error))
            socket.close(CLOSE.tryAgainLater, 'database unavailable; retry shortly');
          else if (error instanceof InvalidTokenError) socket.close(CLOSE.unauthorized, error.message);
          return false; // 4403 for anything else (unless already closed above)
        }
        if (!session) return false;
        const held = perUser.get(session.viewer.id) ?? 0;
        if (held >= options.maxConnectionsPerUser) {
          refused('WS_TOO_MANY_CONNECTIONS_PER_USER');
          socket.close(
            CLOSE.tooManyConnections,
            `Too many connections for this user (limit ${options.maxConnectionsPerUser})`,
          );
          return false;
        }
        if (socket.readyState !== socket.OPEN) return false; // closed meanwhile (instance limit, peer)
        perUser.set(session.viewer.id, held + 1);
        ctx.extra.session = session;
        ctx.extra.expiry = {};
        at(
          session.expiresAt,
          () => socket.close(CLOSE.unauthorized, 'The bearer token expired'),
          ctx.extra.expiry,
        );
        return true;
      },
      onClose: (ctx) => release(ctx.extra),
      onSubscribe: async (ctx: WsContext<Record<string, unknown> | undefined, Extra>, _id, payload) => {
        const running = Object.keys(ctx.subscriptions).length; // this one included
        if (running > options.maxSubscriptionsPerConnection) {
          return [
            new GraphQLError(
              `Too many subscriptions on this connection (limit ${options.maxSubscriptionsPerConnection}).`,
              {
                extensions: {
                  code: 'TOO_MANY_SUBSCRIPTIONS',
                  limit: options.maxSubscriptionsPerConnection,
                  measured: running,
                },
              },
            ),
          ];
        }
        const tooLarge = checkQuerySize(payload.query, options.queryMaxBytes);
        if (tooLarge) return [tooLarge];
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          viewer: ctx.extra.session?.viewer ?? null,
        });
        let document: ReturnType<typeof parse>;
        try {
          document = parse(payload.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [safe(error)];
          throw error;
        }
        const errors = validate(schema, document);
        if (errors.length) return errors;
        const tooCostly = options.checkCost(schema, document, payload.variables, payload.operationName);
        if (tooCostly.length) return tooCostly;
        return {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
    },
    wsServer,
    options.keepAliveMs,
  );
  // graphql-ws logs every socket error with console.error; the only ones ws raises are a client's
  // protocol faults (a message above maxPayload: ws has already closed the socket with 1009).
  wsServer.on('connection', (socket) => {
    socket.removeAllListeners('error');
    socket.on('error', (error) => {
      options.logger.warn('WebSocket closed on a client error', { error: error.message });
    });
  });
  return {
    /** Sockets open now (authenticated or not). */
    connections: () => wsServer.clients.size,
    async close() {
      for (const client of wsServer.clients) client.close(1001, 'server shutting down');
      await cleanup.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
