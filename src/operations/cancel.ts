import { CANCELLED_AUDIT_CTE } from '../audit/record.ts';
import type { Viewer } from '../auth/viewer.ts';
import { prepared } from '../db/prisma.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import type { Operation } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import { canCancel, canView, GUARD_SELECT, type Guarded } from './access.ts';
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
  /** The operation as `readCancelTarget` read it in this request, if the caller did (else read here). */
  target?: CancelTarget | null,
): Promise<Operation> {
  const found = checkCancelTarget(
    viewer,
    target === undefined ? await readCancelTarget(r, id) : target,
    displayId,
    'Operation',
  );
  const applied = await cancelNow(r, found, reason || `cancelled by ${viewer.name}`, viewer.id, {
    audited: true,
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

/** What a cancel reads of an operation: what it changes, and what the access rules need. */
export interface CancelTarget extends Guarded {
  id: string;
  type: string;
  status: Operation['status'];
  jobId: string | null;
  collectionId: string | null;
}

type CancelTargetRow = Omit<CancelTarget, 'collection'> & {
  collectionOwnerId: string | null;
  collectionIsPublic: boolean | null;
};

/**
 * The operation and its collection's guard columns in one statement, prepared once per connection
 * (Prisma's `include` of the collection is a second round trip): a cancel's only read before its
 * write.
 */
const CANCEL_TARGET = prepared(
  'cancel_target',
  `SELECT o.id, o.type, o.status, o."jobId", o."ownerId", o."collectionId",
          c."ownerId" AS "collectionOwnerId", c."isPublic" AS "collectionIsPublic"
     FROM "Operation" o LEFT JOIN "Collection" c ON c.id = o."collectionId"
    WHERE o.id = $1::uuid`,
);

/** The operation a cancel would act on, with no access check (see `checkCancelTarget`); null when none. */
export async function readCancelTarget(r: Pick<Resources, 'db'>, id: string): Promise<CancelTarget | null> {
  const [row] = await r.db.$queryRawUnsafe<CancelTargetRow[]>(CANCEL_TARGET, id);
  if (!row) return null;
  const { collectionOwnerId, collectionIsPublic, ...operation } = row;
  return {
    ...operation,
    collection:
      collectionOwnerId === null
        ? null
        : { ownerId: collectionOwnerId, isPublic: collectionIsPublic === true },
  };
}

/**
 * The operation the viewer may cancel: NotFound when they may not see it (or it is not a `batch`
 * when one is asked for), Forbidden when they may see but not cancel it.
 */
export function checkCancelTarget<T extends CancelTarget>(
  viewer: Viewer,
  found: T | null,
  displayId: string,
  resource: 'Operation' | 'Batch',
): T {
  const kindMatches = resource === 'Operation' || found?.type === 'batch';
  if (!found || !kindMatches || !canView(viewer, found)) throw new NotFoundError(resource, displayId);
  if (!canCancel(viewer, found)) throw new ForbiddenError(`cancel this ${resource.toLowerCase()}`);
  return found;
}

/**
 * The whole row of the operation the viewer asks to cancel, with the checks of `checkCancelTarget`
 * (cancelBatch needs the batch's input).
 */
export async function findToCancel(
  r: Resources,
  viewer: Viewer,
  id: string,
  displayId: string,
  resource: 'Operation' | 'Batch',
) {
  const found = await r.db.operation.findUnique({ where: { id }, include: GUARD_SELECT });
  return checkCancelTarget(viewer, found, displayId, resource);
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
  /**
   * Audited: the user's own cancel (not a batch's items) records OPERATION_CANCELLED by `byUserId`
   * in the cancel's own statement (CANCELLED_AUDIT_CTE), so both happen or neither.
   */
  { audited = false }: { audited?: boolean } = {},
): Promise<transitions.Applied | null> {
  const { id } = operation;
  const applied = await transitions.cancel(
    r.db,
    id,
    reason,
    byUserId,
    audited ? { ctes: CANCELLED_AUDIT_CTE } : {},
  );
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
