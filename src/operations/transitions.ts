import { SETTLE_CTES } from '../credits/ledger.ts';
import { type Db, preparedByText } from '../db/prisma.ts';
import { completeMany, type NamedQuery, startMany } from './grouped.ts';
import { type EventJson, eventJsonSql, type OperationJson, operationJsonSql } from './record.ts';
import { isTerminal, mayApply, type OperationStatus, sourcesOf } from './status.ts';

export type Executor = Pick<Db, '$queryRawUnsafe'>;

/** A change to apply to an operation, recorded as one event. */
export interface Change {
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
  /** Only apply while this attempt's claim still holds the operation. */
  claimId?: string;
  /** Only apply while the operation still points at this job. */
  jobId?: string;
  /** A further SQL condition on the operation row (no parameters). */
  where?: string;
  /** Extra column assignments: column → SQL expression using the parameters in `values`. */
  set?: Record<string, string>;
  values?: unknown[];
  /**
   * Further CTEs of the same statement over `updated` (so they happen exactly when the change
   * does), using the parameters in `values` like `set`: e.g. the audit row of a user's cancel.
   */
  ctes?: string;
}

export interface Applied {
  operation: OperationJson;
  event: EventJson;
}

/**
 * The single place where an operation's status and progress change (the changes below, and those
 * of batch items and batches in batch-transitions.ts; start and complete, which the worker groups,
 * in grouped.ts). Each change is one
 * conditional UPDATE and the INSERT of its event, in one statement (so one transaction): it
 * applies only from an allowed status, numbers the event with the next sequence, and returns
 * null when the operation was not in a state that allows it.
 */
export async function apply(db: Executor, change: Change): Promise<Applied | null> {
  // The transition table decides: a source it does not allow is dropped, and with none left the
  // change is a no-op like any other that does not apply.
  const from = change.from.filter((status) => mayApply(status, change.to));
  if (from.length === 0) return null;
  const params: unknown[] = [
    change.operationId,
    from,
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
  if (change.claimId !== undefined) {
    params.push(change.claimId);
    guard += ` AND "claimId" = $${params.length}::uuid`;
  }
  if (change.jobId !== undefined) {
    params.push(change.jobId);
    guard += ` AND "jobId" = $${params.length}::uuid`;
  }
  if (change.where) guard += ` AND (${change.where})`;
  // Into a terminal status from an unfinished one: its credits are consumed or refunded by the same
  // statement (src/credits/ledger.ts), so every path that ends an operation settles it once.
  const settles = isTerminal(change.to) && from.every((status) => !isTerminal(status));
  if (isTerminal(change.to) && !settles && from.some((status) => !isTerminal(status)))
    throw new Error('a change into a terminal status mixes terminal and unfinished sources');
  const rows = await db.$queryRawUnsafe<{ operation: OperationJson; event: EventJson }[]>(
    preparedChange(`WITH updated AS (
       UPDATE "Operation"
          SET status = $3::"OperationStatus", sequence = sequence + 1, "updatedAt" = now()${sets.map((s) => `, ${s}`).join('')}
        WHERE id = $1::uuid AND status = ANY($2::"OperationStatus"[])${guard}
        RETURNING *
     ), inserted AS (
       INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent", "progressTotal", message, data)
       SELECT id, sequence, $4, status, "progressCurrent", "progressTotal", $5, COALESCE($6::jsonb, ${change.dataSql ? renumber(change.dataSql) : 'NULL'}) FROM updated
       RETURNING *
     )${settles ? `, ${SETTLE_CTES}` : ''}${change.ctes ? `, ${renumber(change.ctes)}` : ''}
     SELECT ${operationJsonSql('u')} AS operation, ${eventJsonSql('i')} AS event FROM updated u, inserted i`),
    ...params,
  );
  return rows[0] ?? null;
}

/**
 * `apply`'s statements, prepared once per pooled connection: a progress step or a cancel spent
 * 0.3–0.75 ms of its ~1–1.8 ms (p50) parsing and planning (measured calling `progress` and `cancel`
 * alternately, unprepared vs prepared: p50 1.08–1.26 vs 0.75–0.84 ms and 1.44–1.80 vs 0.85–1.05 ms).
 * Every text is built here from code (values are parameters), a few dozen shapes in all; the
 * statement's result is two JSON columns, so a migration adding a column cannot change it under a
 * prepared plan.
 */
const preparedChange = preparedByText('change', 64);

/**
 * A NamedQuery (grouped.ts) on a Prisma client or transaction: the worker's start and complete
 * statements, unnamed, for callers that change one operation inside their own transaction.
 */
const viaPrisma =
  (db: Executor): NamedQuery =>
  <T>(_name: string, text: string, values: unknown[]) =>
    db.$queryRawUnsafe<T[]>(text, ...values);

/** PENDING → PROCESSING: a worker claims the operation for a new attempt (grouped.ts's statement). */
export const start = async (db: Executor, operationId: string, workerId: string) =>
  (await startMany(viaPrisma(db), workerId, [operationId]))[0] ?? null;

/** A persisted progress step of the running attempt. */
export const progress = (
  db: Executor,
  operationId: string,
  claimId: string,
  step: { current: number; total: number | null; message: string | null },
) =>
  apply(db, {
    operationId,
    from: ['PROCESSING'],
    to: 'PROCESSING',
    kind: 'PROGRESS',
    message: step.message,
    claimId,
    set: { progressCurrent: '$1', progressTotal: '$2', progressMessage: '$3' },
    values: [step.current, step.total, step.message],
  });

/** The soft timeout passed: the handler was asked to stop (recorded, status unchanged). */
export const softTimeout = (db: Executor, operationId: string, claimId: string, seconds: number) =>
  apply(db, {
    operationId,
    from: ['PROCESSING'],
    to: 'PROCESSING',
    kind: 'SOFT_TIMEOUT',
    message: `soft timeout after ${seconds} s: the handler's signal was aborted`,
    claimId,
  });

/**
 * PROCESSING → COMPLETED with the handler's result, if this attempt still holds the operation
 * (grouped.ts's statement).
 */
export const complete = async (db: Executor, operationId: string, claimId: string, result: unknown) =>
  (await completeMany(viaPrisma(db), [{ operationId, claimId, result }]))[0] ?? null;

/** An operation's recorded error. */
export interface OperationError {
  code: string;
  message: string;
}

/**
 * PROCESSING → FAILED, if the given claim still holds it; or PENDING → FAILED (`from: ['PENDING']`)
 * for an operation that can never start: its job was lost, its batch ended, a reference in its
 * input could not be resolved.
 */
export const fail = (
  db: Executor,
  operationId: string,
  claimId: string | null,
  error: OperationError,
  guard: { from?: OperationStatus[]; jobId?: string } = {},
) =>
  apply(db, {
    operationId,
    from: guard.from ?? ['PROCESSING'],
    to: 'FAILED',
    kind: 'FAILED',
    message: error.message,
    ...(claimId ? { claimId } : {}),
    ...(guard.jobId ? { jobId: guard.jobId } : {}),
    dataSql: "jsonb_build_object('attempt', attempt, 'error', error)",
    set: {
      error: '$1::jsonb',
      completedAt: 'now()',
      workerId: 'NULL',
      claimId: 'NULL',
      nextAttemptAt: 'NULL',
    },
    values: [JSON.stringify(error)],
  });

/**
 * PROCESSING → PENDING with a new job: a retry after a failed attempt (`RETRY_SCHEDULED`), or a
 * release at shutdown (`RELEASED`, which does not use up an attempt). Must run in the transaction
 * that sends the new job.
 */
export const requeueAttempt = (
  db: Executor,
  operationId: string,
  claimId: string,
  next: { jobId: string; at: Date; error: OperationError; release: boolean },
) =>
  apply(db, {
    operationId,
    from: ['PROCESSING'],
    to: 'PENDING',
    kind: next.release ? 'RELEASED' : 'RETRY_SCHEDULED',
    message: next.error.message,
    claimId,
    dataSql: `jsonb_build_object('attempt', attempt${next.release ? ' + 1' : ''}, 'error', $3::jsonb, 'nextAttemptAt', "nextAttemptAt")`,
    set: {
      jobId: '$1::uuid',
      nextAttemptAt: '$2::timestamptz',
      attempt: next.release ? 'attempt - 1' : 'attempt',
      error: next.release ? 'error' : '$3::jsonb',
      workerId: 'NULL',
      claimId: 'NULL',
    },
    values: [next.jobId, next.at.toISOString(), JSON.stringify(next.error)],
  });

/** PENDING → PENDING with a new job, when the old one is gone (a repair). */
export const requeuePending = (db: Executor, operationId: string, oldJobId: string | null, jobId: string) =>
  apply(db, {
    operationId,
    from: ['PENDING'],
    to: 'PENDING',
    kind: 'REQUEUED',
    message: 'its job was missing or finished; a new one was queued',
    ...(oldJobId ? { jobId: oldJobId } : {}),
    set: { jobId: '$1::uuid', nextAttemptAt: 'NULL' },
    values: [jobId],
  });

/** PENDING or PROCESSING → CANCELLED. */
export const cancel = (
  db: Executor,
  operationId: string,
  reason: string,
  byUserId: string,
  guard: { from?: OperationStatus[]; result?: unknown; ctes?: string } = {},
) => {
  const error: OperationError = { code: 'CANCELLED', message: reason };
  return apply(db, {
    ctes: guard.ctes,
    operationId,
    from: guard.from ?? sourcesOf('CANCELLED'),
    to: 'CANCELLED',
    kind: 'CANCELLED',
    message: reason,
    data: { reason, by: byUserId },
    set: {
      error: '$1::jsonb',
      result: guard.result === undefined ? 'result' : '$2::jsonb',
      completedAt: 'now()',
      claimId: 'NULL',
      nextAttemptAt: 'NULL',
    },
    values:
      guard.result === undefined
        ? [JSON.stringify(error)]
        : [JSON.stringify(error), JSON.stringify(guard.result)],
  });
};
