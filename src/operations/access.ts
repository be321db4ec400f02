import type { Viewer } from '../auth/viewer.ts';
import {
  canSeeOperation,
  OPERATION_GUARD_SELECT,
  type OperationGuard,
  operationsWhere,
} from '../auth/visibility.ts';
import type { Prisma } from '../generated/prisma/client.ts';

/** Access rules of operations. Who may *see* one is the shared rule in src/auth/visibility.ts. */

/** An operation as access rules need it: its owner and the collection it acts on, if any. */
export type Guarded = OperationGuard;

/** Select this with an operation to apply the rules below. */
export const GUARD_SELECT = OPERATION_GUARD_SELECT;

/** Who may see an operation (src/auth/visibility.ts). */
export const canView = canSeeOperation;

/** Who may cancel an operation: its owner, the owner of its collection, and admins. */
export const canCancel = (viewer: Viewer, operation: Guarded): boolean =>
  viewer.isAdmin || operation.ownerId === viewer.id || operation.collection?.ownerId === viewer.id;

/**
 * The `where` of `canCancel`: the operations the viewer may cancel (all for admins; else their own
 * and those acting on a collection they own). One visible only through a public collection is not.
 */
export const cancellableWhere = (viewer: Viewer): Prisma.OperationWhereInput =>
  viewer.isAdmin ? {} : { OR: [{ ownerId: viewer.id }, { collection: { is: { ownerId: viewer.id } } }] };

/** The `where` that limits operations to what the viewer may see (src/auth/visibility.ts). */
export const visibleTo = operationsWhere;
