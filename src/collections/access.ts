import type { Viewer } from '../auth/viewer.ts';
import type { Prisma } from '../generated/prisma/client.ts';

/** Who may see a collection (and search it): its owner, anyone when it is public, and admins. */
export const visibleCollections = (viewer: Viewer): Prisma.CollectionWhereInput =>
  viewer.isAdmin ? {} : { OR: [{ ownerId: viewer.id }, { isPublic: true }] };
