import { randomUUID } from 'node:crypto';
import { fromPrisma } from 'pg-boss';
import { STARTED_AUDIT_CTE } from '../audit/record.ts';
import type { Db } from '../db/prisma.ts';
import { currentRequestId } from '../request-context.ts';
import type { Resources } from '../resources.ts';
import { type JobData, jobOptions } from './queues.ts';
import { type EventMessage, eventJsonSql, operationJsonSql } from './record.ts';
import type { OperationType } from './registry.ts';

export type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

export interface NewOperation {
  type: OperationType;
  input: unknown;
  /** `input` as JSON text, when the caller has it already (any key order). Default: serialized here. */
  inputJson?: string;
  ownerId: string;
  idempotencyKey: string | null;
  inputHash: string;
  /** The collection it acts on. Default none. */
  collectionId?: string | null;
  /** Its job's fair-share rank (src/quotas/fair-share.ts). Default: that of a retry. */
  priority?: number;
  /** The operation this one retries (retryOperation). Default none. */
  retryOfId?: string | null;
  /** The schedule whose firing starts it. Default none. */
  scheduleId?: string | null;
  /** A delayed start: its job is queued with this `startAfter`. Default none (now). */
  runAt?: Date | null;
  /** Runs in the creating transaction once the rows are written (audit rows: src/runs/audit-spots.ts). */
  onInserted?: (tx: Tx, created: EventMessage) => Promise<void>;
}

/**
 * CTEs `op` (the operation row, none when the owner already used the idempotency key), `ev` (its
 * CREATED event) and `audit` (its OPERATION_STARTED or BATCH_STARTED row), from parameters $1–$13
 * ({@link operationValues}).
 */
export const CREATED_CTES = `op AS (
    INSERT INTO "Operation" (id, type, input, "ownerId", "idempotencyKey", "inputHash", "jobId", "collectionId", "requestId", "retryOfId", "scheduleId", "scheduledFor", sequence, "creditCost")
    VALUES ($1::uuid, $2, $3::jsonb, $4::uuid, $5, $6, $7::uuid, $8::uuid, $9, $10::uuid, $11::uuid, $12::timestamptz, 1, $13)
    ON CONFLICT ("ownerId", "idempotencyKey") DO NOTHING
    RETURNING *
  ), ev AS (
    INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent")
    SELECT id, 1, 'CREATED', status, 0 FROM op
    RETURNING *
  ), ${STARTED_AUDIT_CTE}`;

/** Parameters $1–$13 of {@link CREATED_CTES}. */
export const operationValues = (spec: NewOperation, id: string, jobId: string) => [
  id,
  spec.type.name,
  spec.inputJson ?? JSON.stringify(spec.input),
  spec.ownerId,
  spec.idempotencyKey,
  spec.inputHash,
  spec.type.inline ? null : jobId,
  spec.collectionId ?? null,
  currentRequestId() ?? null,
  spec.retryOfId ?? null,
  spec.scheduleId ?? null,
  spec.runAt ?? null,
  spec.type.cost,
];

/**
 * Writes the operation row, its first event, its audit row (OPERATION_STARTED or BATCH_STARTED, in
 * the same statement) and (for a job type) its job inside the caller's transaction. Returns null, writing nothing, when the owner already used the idempotency key.
 */
export async function insertOperation(
  tx: Tx,
  r: Pick<Resources, 'boss'>,
  spec: NewOperation,
): Promise<EventMessage | null> {
  const id = randomUUID();
  const jobId = randomUUID();
  const rows = await tx.$queryRawUnsafe<EventMessage[]>(
    `WITH ${CREATED_CTES}
     SELECT ${operationJsonSql('op')} AS operation, ${eventJsonSql('ev')} AS event FROM op, ev`,
    ...operationValues(spec, id, jobId),
  );
  const created = rows[0];
  if (created && spec.onInserted) await spec.onInserted(tx, created);
  if (!created || spec.type.inline) return created ?? null;
  const data: JobData = { operationId: id };
  await r.boss.send(spec.type.name, data, {
    id: jobId,
    ...jobOptions(spec.type.policy, spec.priority),
    ...(spec.runAt ? { startAfter: spec.runAt } : {}),
    db: fromPrisma(tx),
  });
  return created;
}
