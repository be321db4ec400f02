/**
 * Telling "the database is unreachable right now" apart from every other failure, and waiting it
 * out. Used by the runner (terminal writes), the subscription streams (reads) and the GraphQL layer
 * (a retryable SERVICE_UNAVAILABLE error instead of a masked internal one).
 */

/**
 * What PostgreSQL, node-postgres, pg-pool and Prisma say when the server cannot be reached, is
 * shutting down or starting up, or no connection could be had in time: socket errors, SQLSTATE
 * classes 08 (connection exception) and 57P0x (operator intervention), Prisma's P1001/P1017/P2024,
 * and a transaction that could not start within its wait.
 */
const CONNECTION_ERRORS = new RegExp(
  [
    'ECONNREFUSED',
    'ECONNRESET',
    'EPIPE',
    'ETIMEDOUT',
    'EHOSTUNREACH',
    'ENETUNREACH',
    '57P01',
    '57P02',
    '57P03',
    '08000',
    '08001',
    '08003',
    '08004',
    '08006',
    'P1001',
    'P1017',
    'P2024',
    'Connection terminated',
    'connection timeout',
    'timeout exceeded when trying to connect',
    "Can't reach database",
    'Server has closed the connection',
    'the database system is (starting up|shutting down|in recovery mode)',
    'terminating connection due to administrator command',
    'Unable to start a transaction in the given time',
    // The server's connection limit: transient while other clients hold connections.
    '53300',
    'too many clients',
    'P2037',
  ].join('|'),
  'i',
);

/** True for errors that mean the database could not be reached (worth retrying later). */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as Error & { code?: unknown }).code;
  return CONNECTION_ERRORS.test(`${typeof code === 'string' ? code : ''} ${error.message}`);
}

/** Options for {@link retryWhileUnavailable}. */
export interface RetryOptions {
  /** Give up (rethrowing the last error) after this long, in ms. Default 60000. */
  deadlineMs?: number;
  /** First delay between attempts, doubled after each one, in ms. Default 100. */
  initialDelayMs?: number;
  /** Longest delay between attempts, in ms. Default 2000. */
  maxDelayMs?: number;
  /** Stop waiting (rethrowing the last error) once this signal aborts. */
  signal?: AbortSignal;
}

/**
 * Runs `work`, and again with exponential backoff while it fails with a connection error, until it
 * succeeds, fails otherwise, or the deadline passes. Only for work that is safe to repeat: reads,
 * and conditional writes that are no-ops once applied.
 */
export async function retryWhileUnavailable<T>(
  work: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { deadlineMs = 60_000, initialDelayMs = 100, maxDelayMs = 2000, signal } = options;
  const until = Date.now() + deadlineMs;
  for (let delay = initialDelayMs; ; delay = Math.min(delay * 2, maxDelayMs)) {
    try {
      return await work();
    } catch (error) {
      if (!isConnectionError(error) || Date.now() + delay > until || signal?.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
