/** PostgreSQL's SQLSTATE for a statement cancelled by `statement_timeout` (query_canceled). */
const QUERY_CANCELED = '57014';

/**
 * True for an error caused by a statement that ran past its `statement_timeout`, however Prisma
 * wrapped it (a raw query's P2010 with the driver error in `meta`, a driver adapter error, or the
 * pg error itself somewhere in the `cause` chain).
 */
export function isStatementTimeout(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth += 1) {
    if (typeof current !== 'object') return false;
    const { code, meta, message, cause } = current as {
      code?: unknown;
      meta?: { driverAdapterError?: { cause?: { code?: unknown; originalCode?: unknown } } };
      message?: unknown;
      cause?: unknown;
    };
    if (code === QUERY_CANCELED) return true;
    const driver = meta?.driverAdapterError?.cause;
    if (driver && (driver.code === QUERY_CANCELED || driver.originalCode === QUERY_CANCELED)) return true;
    if (typeof message === 'string' && message.includes('canceling statement due to statement timeout'))
      return true;
    current = cause;
  }
  return false;
}
