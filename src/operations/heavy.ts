import { retryWhileUnavailable } from '../db/unavailable.ts';
import type { Operation, OperationEvent } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import { isTerminal } from './status.ts';

/**
 * Values that rows returned by writes and published messages leave out when they are large
 * (src/operations/record.ts, INLINE_MAX_BYTES): read from the database when something asks for them
 * — a GraphQL field that selects them, a worker that runs the operation. A value present on the
 * row is returned as it is, with no read.
 */

/** How long a read waits out an unreachable database, as subscription streams do. */
const READ_RETRY_MS = 30_000;

const read = <T>(query: () => Promise<T>) => retryWhileUnavailable(query, { deadlineMs: READ_RETRY_MS });

/** The operation's input, from the row when it has it, else from the database. */
export async function operationInput(
  r: Pick<Resources, 'db'>,
  operation: Operation,
): Promise<Operation['input']> {
  if (operation.input !== undefined) return operation.input;
  const row = await read(() =>
    r.db.operation.findUniqueOrThrow({ where: { id: operation.id }, select: { input: true } }),
  );
  return row.input;
}

/**
 * The operation's result, from the row when it has it; null while it is not finished (only the
 * terminal transitions write a result), else from the database.
 */
export async function operationResult(
  r: Pick<Resources, 'db'>,
  operation: Operation,
): Promise<Operation['result']> {
  if (operation.result !== undefined) return operation.result;
  if (!isTerminal(operation.status)) return null;
  // Null when the row is gone meanwhile (deleteOperation, retention).
  const row = await read(() =>
    r.db.operation.findUnique({ where: { id: operation.id }, select: { result: true } }),
  );
  return row?.result ?? null;
}

/** An event's data, from the row when it has it, else from the database. */
export async function eventData(
  r: Pick<Resources, 'db'>,
  event: OperationEvent,
): Promise<OperationEvent['data']> {
  if (event.data !== undefined) return event.data;
  const row = await read(() =>
    r.db.operationEvent.findUnique({ where: { id: event.id }, select: { data: true } }),
  );
  return row?.data ?? null;
}
