/** A GraphQL error as the server sends it. */
export interface GraphQLErrorLike {
  message: string;
  path?: readonly (string | number)[];
  extensions?: { code?: string; retryable?: boolean; afterSequence?: number; [key: string]: unknown };
}

/**
 * A failure the client does not retry: a GraphQL error (NOT_FOUND, BAD_USER_INPUT, FORBIDDEN,
 * INTERNAL_SERVER_ERROR…), a refused request, or a protocol fault. `code` is the server's
 * `extensions.code` (or `CLOSED_<n>` / `HTTP_<n>` for a transport-level refusal).
 */
export class OpsgraphError extends Error {
  override name = 'OpsgraphError';
  constructor(
    message: string,
    readonly code: string,
    /** The GraphQL errors as received, when there were any. */
    readonly errors: readonly GraphQLErrorLike[] = [],
  ) {
    super(message);
  }
}

/**
 * The server refused the credentials: no token, a bad or expired one (HTTP 401, `UNAUTHENTICATED`,
 * WebSocket close 4401), or a session it would not accept (close 4403). Surfaced at once, never
 * retried: get a new token and start again.
 */
export class OpsgraphAuthError extends OpsgraphError {
  override name = 'OpsgraphAuthError';
}

/** A stream ended in a way that resubscribing repairs (internal to the resume loop). */
export class RetryableEnd extends Error {
  override name = 'RetryableEnd';
  constructor(
    message: string,
    readonly code: string,
    /** A hint to wait at least this long (ms) before retrying. */
    readonly minDelayMs = 0,
    /** Where the server says to resume (`extensions.after` of operationsUpdated), when it says. */
    readonly resumeAfter?: string,
  ) {
    super(message);
  }
}

/**
 * GraphQL error codes after which subscribing again continues the stream: the server ended it
 * early and said so (everything up to `extensions.afterSequence` was delivered), or a limit that
 * frees up as other streams end.
 */
const RETRYABLE_CODES = new Set([
  'SERVER_SHUTTING_DOWN',
  'SUBSCRIBER_TOO_SLOW',
  'SERVICE_UNAVAILABLE',
  'STATEMENT_TIMEOUT',
  'TOO_MANY_SUBSCRIPTIONS',
  'TOO_MANY_STREAMS',
]);

/** WebSocket close codes that are fatal for the stream; any other close is retried. */
const FATAL_CLOSE: Record<number, string> = {
  4400: 'BAD_REQUEST',
  4406: 'SUBPROTOCOL_NOT_ACCEPTABLE',
  4409: 'SUBSCRIBER_ALREADY_EXISTS',
  4413: 'TOO_MANY_INITIALISATION_REQUESTS',
};

/** Turns a result's GraphQL errors into the error the stream ends with. */
export function fromGraphQLErrors(errors: readonly GraphQLErrorLike[]): Error {
  const first = errors[0];
  const code = first?.extensions?.code ?? 'GRAPHQL_ERROR';
  const message = first?.message ?? 'GraphQL error';
  if (code === 'UNAUTHENTICATED') return new OpsgraphAuthError(message, code, errors);
  if (RETRYABLE_CODES.has(code) || first?.extensions?.retryable === true) {
    const after = first?.extensions?.after;
    return new RetryableEnd(message, code, 0, typeof after === 'string' ? after : undefined);
  }
  return new OpsgraphError(message, code, errors);
}

/** Turns a WebSocket close (as graphql-ws reports it) into the error the stream ends with. */
export function fromClose(code: number, reason: string): Error {
  const message = reason || `WebSocket closed with ${code}`;
  if (code === 4401 || code === 4403) return new OpsgraphAuthError(message, `CLOSED_${code}`);
  const fatal = FATAL_CLOSE[code];
  if (fatal) return new OpsgraphError(message, fatal);
  // 4429: this user holds too many connections on the instance; 1013: instance full or database
  // unreachable. Both free up: retry, but not at once.
  const minDelayMs = code === 4429 || code === 1013 ? 1000 : 0;
  return new RetryableEnd(message, `CLOSED_${code}`, minDelayMs);
}

/** Turns an HTTP response that is not a GraphQL result into the error it stands for. */
export function fromHttpStatus(status: number, errors: readonly GraphQLErrorLike[] = []): Error {
  if (errors.length) {
    const error = fromGraphQLErrors(errors);
    if (!(error instanceof OpsgraphError) || error instanceof OpsgraphAuthError) return error;
  }
  if (status === 401)
    return new OpsgraphAuthError(errors[0]?.message ?? `HTTP ${status}`, 'UNAUTHENTICATED', errors);
  if (status === 429 || status === 502 || status === 503 || status === 504)
    return new RetryableEnd(`HTTP ${status}`, `HTTP_${status}`, 1000);
  return new OpsgraphError(
    errors[0]?.message ?? `HTTP ${status}`,
    errors[0]?.extensions?.code ?? `HTTP_${status}`,
    errors,
  );
}
