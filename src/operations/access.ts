import type { Viewer } from '../auth/viewer.ts';
import type { Prisma } from '../generated/prisma/client.ts';

/** An operation as access rules need it: its owner and the collection it acts on, if any. */
export interface Guarded {
  ownerId: string;
  collection?: { ownerId: string; isPublic: boolean } | null;
}

/** Select this with an operation to apply the rules below. */
export const GUARD_SELECT = { collection: { select: { ownerId: true, isPublic: true } } } as const;

/**
 * Who may see an operation: its owner, the owner of the collection it acts on, anyone when that
 * collection is public, and admins.
 */
export const canView = (viewer: Viewer, operation: Guarded): boolean =>
  viewer.isAdmin ||
  operation.ownerId === viewer.id ||
  operation.collection?.ownerId === viewer.id ||
  operation.collection?.isPublic === true;

/** Who may cancel an operation: its owner, the owner of its collection, and admins. */
export const canCancel = (viewer: Viewer, operation: Guarded): boolean =>
  viewer.isAdmin || operation.ownerId === viewer.id || operation.collection?.ownerId === viewer.id;

/** The `where` that limits a list of operations to what the viewer may see (same rules as canView). */
export const visibleTo = (viewer: Viewer): Prisma.OperationWhereInput =>
  viewer.isAdmin
    ? {}
    : {
        OR: [
          { ownerId: viewer.id },
          { collection: { is: { OR: [{ ownerId: viewer.id }, { isPublic: true }] } } },
        ],
      };
