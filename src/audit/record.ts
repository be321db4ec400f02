import type { Db } from '../db/prisma.ts';
import type { AuditAction } from '../generated/prisma/enums.ts';

export type { AuditAction };

type Executor = Pick<Db, '$queryRawUnsafe'>;

/** One audit entry: who (actorId) did what (action) to what. */
export interface AuditEntry {
  actorId: string;
  action: AuditAction;
  operationId?: string | null;
  collectionId?: string | null;
  /** The user acted upon (credits granted to). */
  targetUserId?: string | null;
  /** Small details (a type, an amount, a reason); never a whole input. */
  data?: Record<string, unknown> | null;
}

/**
 * The one way to write an audit row: call it with the transaction of the action it records, so
 * both commit or neither does. (A start's row is the exception that proves the rule: it is folded
 * into insertOperation's statement with startedAuditSql, for the hot path, and a user's cancel's
 * into the cancel's statement with CANCELLED_AUDIT_CTE.)
 */
export async function recordAudit(tx: Executor, entry: AuditEntry): Promise<void> {
  await tx.$queryRawUnsafe(
    `INSERT INTO "AuditEvent" ("actorId", action, "operationId", "collectionId", "targetUserId", data)
     VALUES ($1::uuid, $2::"AuditAction", $3::uuid, $4::uuid, $5::uuid, $6::jsonb) RETURNING id`,
    entry.actorId,
    entry.action,
    entry.operationId ?? null,
    entry.collectionId ?? null,
    entry.targetUserId ?? null,
    entry.data ? JSON.stringify(entry.data) : null,
  );
}

/**
 * The INSERT of a start's audit row as a CTE over the CTE `op` (the inserted operation):
 * BATCH_STARTED for a batch, else OPERATION_STARTED, with its type.
 */
export const STARTED_AUDIT_CTE = `
  audit AS (
    INSERT INTO "AuditEvent" ("actorId", action, "operationId", "collectionId", data)
    SELECT "ownerId", (CASE WHEN type = 'batch' THEN 'BATCH_STARTED' ELSE 'OPERATION_STARTED' END)::"AuditAction",
           id, "collectionId", jsonb_build_object('type', type)
      FROM op
  )`;

/**
 * The INSERT of a user's cancel's audit row (OPERATION_CANCELLED by whoever the CANCELLED event
 * names) as a CTE of the cancel's own statement (transitions.cancel's `ctes`), over its CTEs
 * `updated` (the operation) and `inserted` (the event): written exactly when the cancel applies,
 * in one round trip instead of a transaction of four.
 */
export const CANCELLED_AUDIT_CTE = `
  audit AS (
    INSERT INTO "AuditEvent" ("actorId", action, "operationId", "collectionId")
    SELECT (i.data->>'by')::uuid, 'OPERATION_CANCELLED', u.id, u."collectionId" FROM updated u, inserted i
  )`;

/** Actions that record a refusal: bounded per user and minute (recordRefusal). */
export type RefusalAction = Extract<AuditAction, 'ACCESS_DENIED' | 'QUOTA_EXCEEDED'>;

/**
 * Records a refusal (a denied access, a quota refusal) in its own small statement, after whatever
 * the request did was rolled back. Bounded: at most `perMinute` rows per user, action and minute;
 * beyond that the minute's last row only counts them (`count`, `lastAt`), so a hostile user cannot
 * grow the table faster than `perMinute` rows a minute per action. Concurrent refusals may pass the
 * bound by the number in flight at once. Never throws (a refusal must not fail because its record
 * could not be written): failures are returned.
 */
export async function recordRefusal(
  db: Executor,
  perMinute: number,
  entry: AuditEntry & { action: RefusalAction },
): Promise<Error | null> {
  try {
    await db.$queryRawUnsafe(
      `WITH recent AS (
         SELECT id FROM "AuditEvent"
          WHERE "actorId" = $1::uuid AND action = $2::"AuditAction" AND "createdAt" >= date_trunc('minute', now())
          ORDER BY "createdAt" DESC LIMIT $7::int
       ), seen AS (SELECT count(*)::int AS n, max(id) AS last FROM recent),
       added AS (
         INSERT INTO "AuditEvent" ("actorId", action, "operationId", "collectionId", "targetUserId", data)
         SELECT $1::uuid, $2::"AuditAction", $3::uuid, $4::uuid, $5::uuid, $6::jsonb FROM seen WHERE n < $7::int
         RETURNING id
       ), counted AS (
         UPDATE "AuditEvent" SET count = count + 1, "lastAt" = now()
          WHERE id = (SELECT last FROM seen WHERE n >= $7::int)
         RETURNING id
       )
       SELECT (SELECT count(*) FROM added)::int AS added, (SELECT count(*) FROM counted)::int AS counted`,
      entry.actorId,
      entry.action,
      entry.operationId ?? null,
      entry.collectionId ?? null,
      entry.targetUserId ?? null,
      entry.data ? JSON.stringify(entry.data) : null,
      perMinute,
    );
    return null;
  } catch (error) {
    return error as Error;
  }
}
