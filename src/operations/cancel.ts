import { type AuditEntry, recordAudit } from '../audit/record.ts';
import type { Viewer } from '../auth/viewer.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import type { Operation } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import { canCancel, canView, GUARD_SELECT } from './access.ts';
import { publish } from './attempt.ts';
import { IllegalTransitionError } from './errors.ts';
import { CANCEL_CHANNEL, toOperation } from './record.ts';
import * as transitions from './transitions.ts';

/**
 * Cancels a PENDING or PROCESSING operation: CANCELLED in the database at once, then the running
 * handler (on whichever process holds it) is told over the bus; pg-boss's cancel is the backstop
 * that also aborts the job's signal through its heartbeat when the bus is down.
 */
export async function cancelOperation(
  r: Resources,
  viewer: Viewer,
  id: string,
  displayId: string,
  reason?: string | null,
): Promise<Operation> {
  const found = await findToCancel(r, viewer, id, displayId, 'Operation');
  const applied = await cancelNow(r, found, reason || `cancelled by ${viewer.name}`, viewer.id, {
    actorId: viewer.id,
    action: 'OPERATION_CANCELLED',
    operationId: id,
    collectionId: found.collectionId,
  });
  if (!applied) {
    const current = await r.db.operation.findUniqueOrThrow({ where: { id } });
    throw new IllegalTransitionError(current.status, 'CANCELLED');
  }
  return toOperation(applied.operation);
}

/** Longest cancel reason, in characters. */
export const CANCEL_REASON_MAX = 1000;

/** Refuses a cancel reason that is too long or holds NUL characters (ValidationError at `path`). */
export function checkCancelReason(reason: string | null | undefined, path: string[] = ['reason']): void {
  if (reason && reason.length > CANCEL_REASON_MAX) {
    throw new ValidationError([{ path, message: `must be at most ${CANCEL_REASON_MAX} characters` }]);
  }
  if (reason?.includes('\u0000')) {
    throw new ValidationError([{ path, message: 'must not contain NUL characters' }]);
  }
}

/**
 * The operation the viewer asks to cancel: NotFound when they may not see it (or it is not a
 * `batch` when one is asked for), Forbidden when they may see but not cancel it.
 */
export async function findToCancel(
  r: Resources,
  viewer: Viewer,
  id: string,
  displayId: string,
  resource: 'Operation' | 'Batch',
) {
  const found = await r.db.operation.findUnique({ where: { id }, include: GUARD_SELECT });
  const kindMatches = resource === 'Operation' || found?.type === 'batch';
  if (!found || !kindMatches || !canView(viewer, found)) throw new NotFoundError(resource, displayId);
  if (!canCancel(viewer, found)) throw new ForbiddenError(`cancel this ${resource.toLowerCase()}`);
  return found;
}

/**
 * Cancels an operation without access checks (callers check): CANCELLED in the database, then its
 * handler is told. Returns null when it was no longer PENDING or PROCESSING.
 */
export async function cancelNow(
  r: Resources,
  operation: { id: string; type: string; jobId: string | null },
  reason: string,
  byUserId: string,
  /** Recorded in the cancel's transaction when given (the user's own cancel, not a batch's items). */
  audit?: AuditEntry,
): Promise<transitions.Applied | null> {
  const { id } = operation;
  const applied = audit
    ? await r.db.$transaction(async (tx) => {
        const done = await transitions.cancel(tx, id, reason, byUserId);
        if (done) await recordAudit(tx, audit);
        return done;
      })
    : await transitions.cancel(r.db, id, reason, byUserId);
  if (!applied) return null;
  publish(r, applied);
  // Keyed per operation: cancels sent while Redis is down are all delivered when it returns.
  r.bus.publish(CANCEL_CHANNEL, { operationId: id }, `${CANCEL_CHANNEL}:${id}`);
  if (operation.jobId) {
    await r.boss.cancel(operation.type, operation.jobId).catch((error: Error) => {
      r.logger.warn('pg-boss cancel failed', { operationId: id, error: error.message });
    });
  }
  return applied;
}
