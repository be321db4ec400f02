import type { Viewer } from '../auth/viewer.ts';
import type { Prisma } from '../generated/prisma/client.ts';

interface Owned {
  ownerId: string;
}

/** Who may see an operation: its owner and admins. */
export const canView = (viewer: Viewer, operation: Owned): boolean =>
  viewer.isAdmin || operation.ownerId === viewer.id;

/** Who may cancel an operation: its owner and admins. */
export const canCancel = (viewer: Viewer, operation: Owned): boolean =>
  viewer.isAdmin || operation.ownerId === viewer.id;

/** The `where` that limits a list of operations to what the viewer may see. */
export const visibleTo = (viewer: Viewer): Prisma.OperationWhereInput =>
  viewer.isAdmin ? {} : { ownerId: viewer.id };
