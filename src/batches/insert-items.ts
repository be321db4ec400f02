import { randomUUID } from 'node:crypto';
import { fromPrisma } from 'pg-boss';
import { RELEASE_MESSAGE } from '../operations/batch-transitions.ts';
import type { Tx } from '../operations/insert.ts';
import { type JobData, jobOptions } from '../operations/queues.ts';
import { type EventMessage, eventJsonSql, operationJsonSql } from '../operations/record.ts';
import type { OperationType } from '../operations/registry.ts';
import { mayApply } from '../operations/status.ts';
import type { Resources } from '../resources.ts';

/** One item of a batch as the submission writes it. */
export interface NewItem {
  id: string;
  type: OperationType;
  /** Its input as sent (references unresolved), or as parsed when `ready`. */
  input: unknown;
  /** The collection it acts on, when known now. */
  collectionId: string | null;
  /** Starts now: no dependencies, no references, a job type, checked as if started alone. */
  ready: boolean;
}

/**
 * Writes a batch's items inside the submission's transaction, set-based: one statement for every
 * item row and its CREATED event, plus, for items that can start at once, their READY event and
 * jobId; then one pg-boss insert per type for their jobs (pg-boss's own statement, so the jobs are
 * exactly those `send` would queue). The coordinator has nothing to do for those items but watch
 * them. Returns the ready items as of their READY events (to publish after commit).
 */
export async function insertItems(
  tx: Tx,
  r: Pick<Resources, 'boss'>,
  batch: { id: string; ownerId: string; requestId: string | null },
  items: readonly NewItem[],
  priority: number,
): Promise<EventMessage[]> {
  // A release is PENDING → PENDING; the transition table decides whether it is one.
  const releasable = mayApply('PENDING', 'PENDING');
  const jobs = items.map((item) => (releasable && item.ready ? randomUUID() : null));
  const ids = items.map(() => randomUUID());
  const released = await tx.$queryRawUnsafe<EventMessage[]>(
    `WITH x AS (
       SELECT * FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::int[], $9::uuid[])
         AS x(id, t, i, b, c, k, j)
     ), items AS (
       INSERT INTO "Operation" (id, type, input, "ownerId", "batchId", "batchItemId", "collectionId", "requestId", sequence, "creditCost", "jobId")
       SELECT id, t, i::jsonb, $1::uuid, $2::uuid, b, c, $10, CASE WHEN j IS NULL THEN 1 ELSE 2 END, k, j FROM x
       RETURNING *
     ), events AS (
       INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent", message)
       SELECT id, 1, 'CREATED', status, 0, NULL FROM items
       UNION ALL
       SELECT id, 2, 'READY', status, 0, $11 FROM items WHERE "jobId" IS NOT NULL
       RETURNING *
     )
     SELECT ${operationJsonSql('o')} AS operation, ${eventJsonSql('e')} AS event
       FROM items o JOIN events e ON e."operationId" = o.id AND e.sequence = 2`,
    batch.ownerId,
    batch.id,
    ids,
    items.map((item) => item.type.name),
    items.map((item) => JSON.stringify(item.input ?? {})),
    items.map((item) => item.id),
    items.map((item) => item.collectionId),
    items.map((item) => item.type.cost),
    jobs,
    batch.requestId,
    RELEASE_MESSAGE,
  );
  await queueJobs(
    tx,
    r,
    items.flatMap((item, i) => {
      const jobId = jobs[i];
      return jobId ? [{ type: item.type, jobId, operationId: ids[i] as string }] : [];
    }),
    priority,
  );
  return released;
}

/**
 * Queues one pg-boss job per entry inside `tx`, one insert per type: pg-boss's own set-based
 * statement, with the options `send` would be given (src/operations/queues.ts).
 */
export async function queueJobs(
  tx: Tx,
  r: Pick<Resources, 'boss'>,
  entries: readonly { type: OperationType; jobId: string; operationId: string }[],
  priority: number,
): Promise<void> {
  const byType = new Map<OperationType, { id: string; data: JobData }[]>();
  for (const { type, jobId, operationId } of entries) {
    const list = byType.get(type) ?? [];
    list.push({ id: jobId, data: { operationId } });
    byType.set(type, list);
  }
  for (const [type, list] of byType) {
    const options = jobOptions(type.policy, priority);
    await r.boss.insert(
      type.name,
      list.map((job) => ({ ...job, ...options })),
      { db: fromPrisma(tx) },
    );
  }
}
