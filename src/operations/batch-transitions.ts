import { type EventJson, eventJsonSql, type OperationJson, operationJsonSql } from './record.ts';
import { mayApply } from './status.ts';
import { type Applied, apply, type Executor, type OperationError } from './transitions.ts';

/**
 * The changes specific to batches: an item's release when its dependencies complete, its skip or
 * rollback, and the batch coordinator's own events and end. Applied like every other change.
 */

/** The message of an item's READY event. */
export const RELEASE_MESSAGE = 'dependencies completed; references resolved';

/** A batch item whose dependencies completed: its resolved input and its job (PENDING, once). */
export const release = (
  db: Executor,
  operationId: string,
  input: unknown,
  jobId: string | null,
  collectionId: string | null = null,
) =>
  apply(db, {
    operationId,
    from: ['PENDING'],
    to: 'PENDING',
    kind: 'READY',
    message: RELEASE_MESSAGE,
    where: '"jobId" IS NULL',
    set: { input: '$1::jsonb', jobId: '$2::uuid', collectionId: 'COALESCE($3::uuid, "collectionId")' },
    values: [JSON.stringify(input), jobId, collectionId],
  });

/** One item to release with `releaseMany`. */
export interface Release {
  operationId: string;
  input: unknown;
  jobId: string;
  collectionId: string | null;
}

/**
 * `release` for many items in one statement (the coordinator's and the submission's path: one
 * UPDATE and one event INSERT for all of them). Returns the items it applied to (those still PENDING
 * without a job), each as of its READY event.
 */
export async function releaseMany(db: Executor, items: readonly Release[]): Promise<Applied[]> {
  if (items.length === 0 || !mayApply('PENDING', 'PENDING')) return [];
  const rows = await db.$queryRawUnsafe<{ operation: OperationJson; event: EventJson }[]>(
    `WITH x AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[]) AS x(id, input, job, collection)
     ), updated AS (
       UPDATE "Operation" o
          SET sequence = o.sequence + 1, "updatedAt" = now(), input = x.input::jsonb, "jobId" = x.job,
              "collectionId" = COALESCE(x.collection, o."collectionId")
         FROM x
        WHERE o.id = x.id AND o.status = 'PENDING' AND o."jobId" IS NULL
        RETURNING o.*
     ), inserted AS (
       INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent", "progressTotal", message)
       SELECT id, sequence, 'READY', status, "progressCurrent", "progressTotal", $5 FROM updated
       RETURNING *
     )
     SELECT ${operationJsonSql('u')} AS operation, ${eventJsonSql('i')} AS event
       FROM updated u JOIN inserted i ON i."operationId" = u.id`,
    items.map((item) => item.operationId),
    items.map((item) => JSON.stringify(item.input)),
    items.map((item) => item.jobId),
    items.map((item) => item.collectionId),
    RELEASE_MESSAGE,
  );
  return rows;
}

/**
 * A batch item that will not run: PENDING → CANCELLED with code SKIPPED (or ROLLED_BACK, when its
 * work was undone with the batch's transaction) and the reason.
 */
export const skip = (
  db: Executor,
  operationId: string,
  reason: string,
  rootCause: string | null,
  code: 'SKIPPED' | 'ROLLED_BACK' = 'SKIPPED',
) => {
  const error = { code, message: reason, ...(rootCause ? { rootCause } : {}) };
  return apply(db, {
    operationId,
    from: ['PENDING'],
    to: 'CANCELLED',
    kind: code,
    message: reason,
    data: error,
    set: { error: '$1::jsonb', completedAt: 'now()', nextAttemptAt: 'NULL' },
    values: [JSON.stringify(error)],
  });
};

/** A completed batch item undone by its type's compensation step (status stays COMPLETED). */
export const rolledBack = (db: Executor, operationId: string) =>
  apply(db, {
    operationId,
    from: ['COMPLETED'],
    to: 'COMPLETED',
    kind: 'ROLLED_BACK',
    message: 'undone by its compensation step (atomic batch)',
    where: '"compensatedAt" IS NULL',
    set: { compensatedAt: 'now()' },
  });

/**
 * Several events of a running operation that change nothing else (a batch's item changes), in one
 * statement: the sequence moves by their number and they are numbered in order. Null when the
 * claim no longer holds the operation. Each message carries the operation as of its event.
 */
export async function notes(
  db: Executor,
  operationId: string,
  claimId: string,
  kind: string,
  entries: { message: string; data: unknown }[],
): Promise<Applied[] | null> {
  // Events without a status change, allowed by the table like every other change.
  if (!mayApply('PROCESSING', 'PROCESSING')) return null;
  const rows = await db.$queryRawUnsafe<{ operation: OperationJson; events: EventJson[] }[]>(
    `WITH updated AS (
       UPDATE "Operation" SET sequence = sequence + $3, "updatedAt" = now()
        WHERE id = $1::uuid AND status = $7::"OperationStatus" AND "claimId" = $2::uuid
        RETURNING *
     ), inserted AS (
       INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent", "progressTotal", message, data)
       SELECT u.id, u.sequence - $3 + x.n, $4, u.status, u."progressCurrent", u."progressTotal", x.m, x.d::jsonb
         FROM updated u, unnest($5::text[], $6::text[]) WITH ORDINALITY AS x(m, d, n)
       RETURNING *
     )
     SELECT ${operationJsonSql('u')} AS operation,
            (SELECT jsonb_agg(${eventJsonSql('i')} ORDER BY i.sequence) FROM inserted i) AS events
       FROM updated u`,
    operationId,
    claimId,
    entries.length,
    kind,
    entries.map((entry) => entry.message),
    entries.map((entry) => JSON.stringify(entry.data)),
    'PROCESSING',
  );
  const row = rows[0];
  if (!row) return null;
  return (row.events ?? []).map((event) => ({
    operation: { ...row.operation, sequence: event.sequence },
    event,
  }));
}

/** An event of a running operation that changes nothing else (a batch's item changes). */
export const note = (
  db: Executor,
  operationId: string,
  claimId: string,
  kind: string,
  message: string,
  data: unknown,
) => apply(db, { operationId, from: ['PROCESSING'], to: 'PROCESSING', kind, message, data, claimId });

/** PROCESSING → CANCELLED by the attempt holding it (a batch that finished cancelling its items). */
export const cancelHeld = (
  db: Executor,
  operationId: string,
  claimId: string,
  reason: string,
  data: unknown,
) =>
  apply(db, {
    operationId,
    from: ['PROCESSING'],
    to: 'CANCELLED',
    kind: 'CANCELLED',
    message: reason,
    data,
    claimId,
    set: { error: '$1::jsonb', result: '$2::jsonb', completedAt: 'now()', workerId: 'NULL', claimId: 'NULL' },
    values: [JSON.stringify({ code: 'CANCELLED', message: reason }), JSON.stringify(data)],
  });

/** PROCESSING → FAILED by the attempt holding it, with data (a batch's item outcomes). */
export const failHeld = (
  db: Executor,
  operationId: string,
  claimId: string,
  error: OperationError,
  data: unknown,
) =>
  apply(db, {
    operationId,
    from: ['PROCESSING'],
    to: 'FAILED',
    kind: 'FAILED',
    message: error.message,
    data,
    claimId,
    set: { error: '$1::jsonb', result: '$2::jsonb', completedAt: 'now()', workerId: 'NULL', claimId: 'NULL' },
    values: [JSON.stringify(error), JSON.stringify(data)],
  });
