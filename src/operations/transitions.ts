import type { Db } from '../db/prisma.ts';
import type { EventJson, OperationJson } from './record.ts';
import { type OperationStatus, sourcesOf } from './status.ts';

type Executor = Pick<Db, '$queryRawUnsafe'>;

/** A change to apply to an operation, recorded as one event. */
interface Change {
  operationId: string;
  /** The status the change applies from; anything else makes it a no-op returning null. */
  from: readonly OperationStatus[];
  /** The status after the change (equal to `from` for a progress step). */
  to: OperationStatus;
  kind: string;
  message?: string | null;
  data?: unknown;
  /** SQL for the event's data computed from the updated row, instead of `data`. */
  dataSql?: string;
  /** Only apply when the operation is still on this attempt (a worker's claim). */
  attempt?: number;
  /** Extra column assignments: column → SQL expression using the parameters in `values`. */
  set?: Record<string, string>;
  values?: unknown[];
}

export interface Applied {
  operation: OperationJson;
  event: EventJson;
}

/**
 * The single place where an operation's status and progress change. Each change is one
 * conditional UPDATE and the INSERT of its event, in one statement (so one transaction): it
 * applies only from an allowed status, numbers the event with the next sequence, and returns
 * null when the operation was not in a state that allows it.
 */
async function apply(db: Executor, change: Change): Promise<Applied | null> {
  const params: unknown[] = [
    change.operationId,
    change.from,
    change.to,
    change.kind,
    change.message ?? null,
    change.data === undefined ? null : JSON.stringify(change.data),
  ];
  const extra = change.values ?? [];
  const offset = params.length;
  const renumber = (sql: string) => sql.replace(/\$(\d+)/g, (_, n) => `$${Number(n) + offset}`);
  const sets = Object.entries(change.set ?? {}).map(([column, sql]) => `"${column}" = ${renumber(sql)}`);
  params.push(...extra);
  let guard = '';
  if (change.attempt !== undefined) {
    params.push(change.attempt);
    guard = ` AND attempt = $${params.length}`;
  }
  const rows = await db.$queryRawUnsafe<{ operation: OperationJson; event: EventJson }[]>(
    `WITH updated AS (
       UPDATE "Operation"
          SET status = $3::"OperationStatus", sequence = sequence + 1, "updatedAt" = now()${sets.map((s) => `, ${s}`).join('')}
        WHERE id = $1::uuid AND status = ANY($2::"OperationStatus"[])${guard}
        RETURNING *
     ), inserted AS (
       INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent", "progressTotal", message, data)
       SELECT id, sequence, $4, status, "progressCurrent", "progressTotal", $5, COALESCE($6::jsonb, ${change.dataSql ?? 'NULL'}) FROM updated
       RETURNING *
     )
     SELECT row_to_json(u) AS operation, row_to_json(i) AS event FROM updated u, inserted i`,
    ...params,
  );
  return rows[0] ?? null;
}

/** PENDING → PROCESSING for a worker starting a new attempt. */
export const start = (db: Executor, operationId: string, workerId: string) =>
  apply(db, {
    operationId,
    from: ['PENDING'],
    to: 'PROCESSING',
    kind: 'STARTED',
    set: { attempt: 'attempt + 1', startedAt: 'now()', workerId: '$1' },
    values: [workerId],
    dataSql: "jsonb_build_object('attempt', attempt)",
  });

/** A persisted progress step of the running attempt. */
export const progress = (
  db: Executor,
  operationId: string,
  attempt: number,
  step: { current: number; total: number | null; message: string | null },
) =>
  apply(db, {
    operationId,
    from: ['PROCESSING'],
    to: 'PROCESSING',
    kind: 'PROGRESS',
    message: step.message,
    attempt,
    set: { progressCurrent: '$1', progressTotal: '$2', progressMessage: '$3' },
    values: [step.current, step.total, step.message],
  });

/** PROCESSING → COMPLETED with the handler's result, if this attempt still holds the operation. */
export const complete = (db: Executor, operationId: string, attempt: number, result: unknown) =>
  apply(db, {
    operationId,
    from: ['PROCESSING'],
    to: 'COMPLETED',
    kind: 'COMPLETED',
    attempt,
    data: { result },
    set: { result: '$1::jsonb', completedAt: 'now()', workerId: 'NULL' },
    values: [JSON.stringify(result ?? null)],
  });

/** An operation's recorded error. */
export interface OperationError {
  code: string;
  message: string;
}

/** PROCESSING → FAILED with the error, if this attempt still holds the operation. */
export const fail = (db: Executor, operationId: string, attempt: number, error: OperationError) =>
  apply(db, {
    operationId,
    from: ['PROCESSING'],
    to: 'FAILED',
    kind: 'FAILED',
    message: error.message,
    attempt,
    data: { error },
    set: { error: '$1::jsonb', completedAt: 'now()', workerId: 'NULL' },
    values: [JSON.stringify(error)],
  });

/** PENDING or PROCESSING → CANCELLED. */
export const cancel = (db: Executor, operationId: string, reason: string, byUserId: string) => {
  const error: OperationError = { code: 'CANCELLED', message: reason };
  return apply(db, {
    operationId,
    from: sourcesOf('CANCELLED'),
    to: 'CANCELLED',
    kind: 'CANCELLED',
    message: reason,
    data: { reason, by: byUserId },
    set: { error: '$1::jsonb', completedAt: 'now()' },
    values: [JSON.stringify(error)],
  });
};
