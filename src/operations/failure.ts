import { isStatementTimeout } from '../db/timeout.ts';
import { isConnectionError } from '../db/unavailable.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';

/**
 * What a failure may tell the client. Handler errors are recorded on operations, which their owners
 * (and batch outcomes, collection status messages) read: only errors a handler raises on purpose
 * — a class with its own stable `code`, or a domain error — keep their message. Database, driver,
 * system and parser errors, and anything without a code, are recorded with a stable code and a
 * fixed message; their details belong in the server logs.
 */
export interface SafeFailure {
  code: string;
  message: string;
  /** False when the message was replaced: the caller should log the original error. */
  exposed: boolean;
}

/** Longest recorded failure message. */
export const MAX_FAILURE_MESSAGE = 500;

const CODE = /^[A-Z][A-Z0-9_]{1,63}$/;

/** Text that gives away SQL, Prisma or a stack trace even inside a handler's own message. */
const INTERNALS =
  /Invalid `prisma|prisma\.\$|\bPrismaClient|Raw query failed|SQLSTATE|syntax error at or near|\bselect\b[\s\S]{0,200}\bfrom\b|\binsert\s+into\b|\bupdate\b[\s\S]{0,200}\bset\b|\bdelete\s+from\b|\bnode_modules\b|\n\s+at /i;

const fixed = (code: string, message: string): SafeFailure => ({ code, message, exposed: false });

const UNEXPECTED = 'the handler failed with an unexpected error (details are in the server logs)';

const cut = (text: string) =>
  text.length <= MAX_FAILURE_MESSAGE ? text : `${text.slice(0, MAX_FAILURE_MESSAGE - 1)}…`;

function internal(error: Error): SafeFailure | undefined {
  const fields = error as Error & Record<string, unknown>;
  if (isStatementTimeout(error))
    return fixed('STATEMENT_TIMEOUT', 'a database statement ran past its statement timeout');
  if (isConnectionError(error)) return fixed('DATABASE_UNAVAILABLE', 'the database was unreachable');
  if (
    error.name.startsWith('PrismaClient') ||
    'clientVersion' in fields ||
    error.name === 'DriverAdapterError' ||
    ('severity' in fields && 'routine' in fields)
  )
    return fixed('DATABASE_ERROR', 'a database statement failed (details are in the server logs)');
  if ('syscall' in fields || 'errno' in fields)
    return fixed('SYSTEM_ERROR', 'a system call failed (details are in the server logs)');
  if (error.name === 'ZodError') {
    // Zod's issues name the path and what was expected, never the value.
    const issues = (fields.issues ?? []) as { path: PropertyKey[]; message: string }[];
    const text = issues.map((issue) => `${['input', ...issue.path].map(String).join('.')}: ${issue.message}`);
    return { code: 'INVALID_INPUT', message: cut(text.join('; ') || 'invalid input'), exposed: false };
  }
  return undefined;
}

/** The code and message to record for `error`, thrown by a handler (or a compensation). */
export function safeFailure(error: unknown): SafeFailure {
  if (!(error instanceof Error)) return fixed('HANDLER_ERROR', UNEXPECTED);
  const known = internal(error);
  if (known) return known;
  let code: string | undefined;
  if (error instanceof ValidationError) code = 'INVALID_INPUT';
  else if (error instanceof NotFoundError) code = 'NOT_FOUND';
  else if (error instanceof ForbiddenError) code = 'FORBIDDEN';
  else {
    const own = (error as Error & { code?: unknown }).code;
    if (typeof own === 'string' && CODE.test(own)) code = own;
  }
  if (!code) return fixed('HANDLER_ERROR', UNEXPECTED);
  const message = error.message || error.name;
  if (INTERNALS.test(message)) return fixed(code, 'the handler failed (details are in the server logs)');
  return { code, message: cut(message), exposed: true };
}
