import type { Viewer } from '../auth/viewer.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { canView, GUARD_SELECT } from '../operations/access.ts';
import { IllegalTransitionError } from '../operations/errors.ts';
import { isTerminal } from '../operations/status.ts';
import type { Resources } from '../resources.ts';
import { auditSpot } from './audit-spots.ts';

/** The pg-boss queue of the retention job (scheduled on `config.retentionCron`). */
export const RETENTION_QUEUE = 'opsgraph.retention';

/** Statements one run of the retention job makes at most per type, so one run stays bounded. */
const MAX_ROUNDS = 100;

/**
 * Removes terminal operations kept longer than their type's retention (`retentionDays`, default
 * `config.retentionDays`), with their events (ON DELETE CASCADE), oldest first, at most
 * `config.retentionBatchSize` per statement through "Operation_terminal_completedAt_idx" (type,
 * completedAt) with SKIP LOCKED, so concurrent runs split the work. A batch's items go with their
 * batch, never alone; operations that retried a removed one, and rows of other tables naming it
 * (exports, credit ledger, audit log), stay. Types no longer registered are not removed. Returns
 * how many operations were removed (items not counted).
 */
export async function removeExpired(r: Resources): Promise<number> {
  let removed = 0;
  for (const type of r.registry.list()) {
    const days = type.retentionDays ?? r.config.retentionDays;
    for (let round = 0; round < MAX_ROUNDS; round += 1) {
      const n = await r.db.$executeRawUnsafe(
        `WITH doomed AS (
           SELECT id FROM "Operation"
            WHERE type = $1 AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
              AND "completedAt" < now() - make_interval(days => $2::int)
              AND "batchId" IS NULL
            ORDER BY "completedAt"
            LIMIT $3::int
            FOR UPDATE SKIP LOCKED
         )
         DELETE FROM "Operation" o USING doomed WHERE o.id = doomed.id`,
        type.name,
        days,
        r.config.retentionBatchSize,
      );
      removed += n;
      if (n < r.config.retentionBatchSize) break;
    }
  }
  return removed;
}

/**
 * Deletes a terminal operation with its events (a batch with its items). NotFound when the viewer
 * may not see it, Forbidden when they may see but not change it (only its owner and admins may);
 * an unfinished one is IllegalTransitionError (cancel it first); a batch's item goes only with its
 * batch (ValidationError).
 */
export async function deleteOperation(
  r: Resources,
  viewer: Viewer,
  id: string,
  displayId: string,
): Promise<void> {
  await r.db.$transaction(async (tx) => {
    const found = await tx.operation.findUnique({ where: { id }, include: GUARD_SELECT });
    if (!found || !canView(viewer, found)) throw new NotFoundError('Operation', displayId);
    if (!(viewer.isAdmin || found.ownerId === viewer.id)) throw new ForbiddenError('delete this operation');
    if (found.batchId) {
      throw new ValidationError([{ path: ['id'], message: 'a batch item is deleted with its batch' }]);
    }
    // Locked, so it cannot be retried or changed while it goes.
    const [row] = await tx.$queryRawUnsafe<{ status: typeof found.status }[]>(
      `SELECT status FROM "Operation" WHERE id = $1::uuid FOR UPDATE`,
      id,
    );
    if (!row) throw new NotFoundError('Operation', displayId);
    if (!isTerminal(row.status)) throw new IllegalTransitionError(row.status, null);
    await auditSpot(tx, { action: 'operation.deleted', actorId: viewer.id, operationId: id });
    await tx.$executeRawUnsafe(`DELETE FROM "Operation" WHERE id = $1::uuid`, id);
  });
}
