import type { Viewer } from '../auth/viewer.ts';
import type { BatchSpec } from '../batches/coordinator.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import type { Operation } from '../generated/prisma/client.ts';
import { observeBatchSubmitted } from '../metrics/events.ts';
import { canView, GUARD_SELECT } from '../operations/access.ts';
import { publish } from '../operations/attempt.ts';
import { IllegalTransitionError } from '../operations/errors.ts';
import { insertOperation } from '../operations/insert.ts';
import { toOperation } from '../operations/record.ts';
import { startOperation } from '../operations/start.ts';
import { countUnfinished, fairPriority } from '../quotas/fair-share.ts';
import { enforceQuotas } from '../quotas/quotas.ts';
import type { Resources } from '../resources.ts';
import { auditSpot } from './audit-spots.ts';

/** The statuses retryOperation starts again from (and a partially completed batch, below). */
const RETRYABLE = ['FAILED', 'CANCELLED'] as const;

/**
 * Starts a new operation of the same type from a FAILED or CANCELLED one, linked to it
 * (`retryOfId`), through startOperation (input validation and limits, access, quotas), with the
 * old input or `input` instead. Only its owner and admins may retry it (NotFound when the viewer
 * may not see it, Forbidden when they may see but not change it); the new operation is the
 * viewer's. A batch is retried with `retryBatch`.
 */
export async function retryOperation(
  r: Resources,
  viewer: Viewer,
  id: string,
  displayId: string,
  input?: unknown,
): Promise<Operation> {
  const found = await r.db.operation.findUnique({ where: { id }, include: GUARD_SELECT });
  if (!found || !canView(viewer, found)) throw new NotFoundError('Operation', displayId);
  if (!(viewer.isAdmin || found.ownerId === viewer.id)) throw new ForbiddenError('retry this operation');
  if (!(RETRYABLE as readonly string[]).includes(found.status) && !partiallyCompleted(found)) {
    throw new IllegalTransitionError(found.status, 'PENDING');
  }
  if (found.type === 'batch') {
    if (input !== undefined && input !== null) {
      throw new ValidationError([
        { path: ['input'], message: "a batch is retried with its items' own inputs; omit input" },
      ]);
    }
    return retryBatch(r, viewer, found);
  }
  const started = await startOperation(r, viewer, {
    type: found.type,
    input: input ?? found.input,
    retryOfId: found.id,
    onInserted: (tx, created) =>
      auditSpot(tx, {
        action: 'operation.retried',
        actorId: viewer.id,
        operationId: created.operation.id,
        data: { retryOf: found.id },
      }),
  });
  return started.operation;
}

/**
 * A non-atomic batch some of whose items failed ends COMPLETED with the outcome PARTIALLY_COMPLETED
 * as its result: it did not complete, and is retried like a FAILED one.
 */
const partiallyCompleted = (operation: Operation) =>
  operation.type === 'batch' &&
  operation.status === 'COMPLETED' &&
  (operation.result as { status?: string } | null)?.status === 'PARTIALLY_COMPLETED';

/**
 * Retries a FAILED or CANCELLED batch: a new batch with the same items, dependencies and flags,
 * linked to the old one. Items that COMPLETED in it (and were not rolled back) are created
 * COMPLETED with their results, kept as they were (their start and end times included) and never
 * run again; the others are created PENDING with their stored inputs (references already resolved
 * from the kept results stay resolved; unresolved ones resolve against the same results). The new
 * batch's coordinator then runs only those. Only the rerun items count for the quotas. In an atomic
 * batch a failure rolled every completed item back, so all of them run again.
 */
async function retryBatch(r: Resources, viewer: Viewer, old: Operation): Promise<Operation> {
  const type = r.registry.get('batch');
  if (!type) throw new Error('the batch type is not registered');
  const spec = old.input as BatchSpec;
  const created = await r.db.$transaction(
    async (tx) => {
      const batch = await insertOperation(tx, r, {
        type,
        input: spec,
        ownerId: viewer.id,
        idempotencyKey: null,
        inputHash: old.inputHash ?? '',
        priority: fairPriority(await countUnfinished(tx, viewer.id)),
        retryOfId: old.id,
      });
      if (!batch) throw new Error('a batch without an idempotency key was not created');
      const [counted] = await tx.$queryRawUnsafe<{ rerun: number }[]>(
        `WITH old AS (
           SELECT * FROM "Operation" WHERE "batchId" = $1::uuid
         ), kept AS (
           INSERT INTO "Operation" (type, input, "ownerId", "batchId", "batchItemId", "collectionId", "requestId",
                                    status, result, attempt, "progressCurrent", "progressTotal", "progressMessage",
                                    "createdAt", "startedAt", "completedAt", sequence, "retryOfId")
           SELECT type, input, $2::uuid, $3::uuid, "batchItemId", "collectionId", $4, 'COMPLETED', result, attempt,
                  "progressCurrent", "progressTotal", "progressMessage", "createdAt", "startedAt", "completedAt", 2, id
             FROM old WHERE status = 'COMPLETED' AND "compensatedAt" IS NULL
           RETURNING id, "retryOfId"
         ), rerun AS (
           INSERT INTO "Operation" (type, input, "ownerId", "batchId", "batchItemId", "collectionId", "requestId", sequence, "retryOfId", "creditCost")
           SELECT type, input, $2::uuid, $3::uuid, "batchItemId", "collectionId", $4, 1, id, COALESCE(($5::jsonb ->> type)::int, 0)
             FROM old WHERE NOT (status = 'COMPLETED' AND "compensatedAt" IS NULL)
           RETURNING id, status
         ), events AS (
           INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent", message)
           SELECT id, 1, 'CREATED', status, 0, NULL FROM rerun
           UNION ALL SELECT id, 1, 'CREATED', 'PENDING', 0, NULL FROM kept
           UNION ALL SELECT id, 2, 'COMPLETED', 'COMPLETED', 0, 'kept from the retried batch (item ' || "retryOfId" || ')' FROM kept
           RETURNING 1
         )
         SELECT (SELECT count(*)::int FROM rerun) AS rerun, (SELECT count(*) FROM events) AS written`,
        old.id,
        viewer.id,
        batch.operation.id,
        batch.operation.requestId,
        JSON.stringify(Object.fromEntries(r.registry.list().map((t) => [t.name, t.cost]))),
      );
      // The batch's rerun items count, the kept ones (already finished) and the batch itself do not;
      // the rerun items' costs are reserved with the batch's (kept ones cost 0 and are settled at
      // once, so every operation has one RESERVE and, once terminal, one CONSUME or REFUND).
      await enforceQuotas(tx, r.config, {
        ownerId: viewer.id,
        operations: counted?.rerun ?? 0,
        reserveFor: batch.operation.id,
      });
      await tx.$executeRawUnsafe(
        `INSERT INTO "CreditLedger" ("userId", "operationId", kind, amount, "balanceAfter")
         SELECT $1::uuid, o.id, 'CONSUME', 0, a.balance
           FROM "Operation" o, "CreditAccount" a
          WHERE o."batchId" = $2::uuid AND o.status = 'COMPLETED' AND a."userId" = $1::uuid`,
        viewer.id,
        batch.operation.id,
      );
      await auditSpot(tx, {
        action: 'operation.retried',
        actorId: viewer.id,
        operationId: batch.operation.id,
        data: { retryOf: old.id },
      });
      return batch;
    },
    { maxWait: 10_000, timeout: 30_000 },
  );
  publish(r, created);
  observeBatchSubmitted(
    r.metrics,
    spec.items.map((item) => item.type),
  );
  return toOperation(created.operation);
}
