import type { Prisma } from '../generated/prisma/client.ts';
import type { Viewer } from './viewer.ts';

/**
 * The one visibility rule of opsgraph (SPEC §3), in two forms that always agree: predicates on
 * rows already loaded, and Prisma `where` fragments for lists and lookups (index-friendly: they
 * compare `ownerId`, `isPublic` and the collection relation, never a computed value).
 *
 * - A **collection** is visible to its owner, to everyone when it is public, and to admins.
 * - A **document** is visible exactly when its collection is.
 * - An **operation** is visible to its owner, to whoever may see the collection it acts on (its
 *   owner; everyone when public), and to admins. A batch is an operation like any other, and its
 *   items are operations of their own: seeing one item never shows the batch, nor the reverse.
 * - A **schedule** is visible to its owner and to admins (nobody else, whatever it starts).
 * - A **user** is shown in full (id, isAdmin, …) only to themself and to admins; to others only
 *   as their name, where an operation or collection they may see names its owner.
 *
 * SQL that lists operations at scale (src/operations/list.ts) reads a collection's `isPublic`
 * through `Operation.onPublicCollection`, a copy the database keeps equal to it in the writing
 * transaction (migration 20261207140000_operation_public_flag), so the rule is the same there.
 *
 * Without a viewer nothing is visible. Every GraphQL path that returns one of these objects goes
 * through this module (directly or through `src/auth/visible.ts`, its per-request loaders).
 */

/** A collection as the rule needs it. */
export interface CollectionGuard {
  ownerId: string;
  isPublic: boolean;
}

/** An operation as the rule needs it: its owner and the collection it acts on, if loaded. */
export interface OperationGuard {
  ownerId: string;
  collection?: CollectionGuard | null;
}

/** Select this with an operation to apply `canSeeOperation`. */
export const OPERATION_GUARD_SELECT = { collection: { select: { ownerId: true, isPublic: true } } } as const;

/** Matches no row. */
const NOTHING = { id: { in: [] as string[] } };

export const canSeeCollection = (viewer: Viewer | null, collection: CollectionGuard): boolean =>
  viewer !== null && (viewer.isAdmin || collection.ownerId === viewer.id || collection.isPublic);

export const canSeeOperation = (viewer: Viewer | null, operation: OperationGuard): boolean =>
  viewer !== null &&
  (viewer.isAdmin ||
    operation.ownerId === viewer.id ||
    (operation.collection != null && canSeeCollection(viewer, operation.collection)));

/**
 * Whether the operation is visible on its owner alone (owner or admin), so no collection needs
 * loading; false means "look at its collection", not "hidden".
 */
export const seesByOwner = (viewer: Viewer | null, ownerId: string): boolean =>
  viewer !== null && (viewer.isAdmin || ownerId === viewer.id);

/** Whether the viewer may see a user's details (id, isAdmin, …) rather than only the name. */
export const canSeeUserDetails = (viewer: Viewer | null, userId: string): boolean =>
  viewer !== null && (viewer.isAdmin || viewer.id === userId);

export const collectionsWhere = (viewer: Viewer | null): Prisma.CollectionWhereInput =>
  viewer === null ? NOTHING : viewer.isAdmin ? {} : { OR: [{ ownerId: viewer.id }, { isPublic: true }] };

export const documentsWhere = (viewer: Viewer | null): Prisma.DocumentWhereInput =>
  viewer === null ? NOTHING : viewer.isAdmin ? {} : { collection: { is: collectionsWhere(viewer) } };

export const operationsWhere = (viewer: Viewer | null): Prisma.OperationWhereInput =>
  viewer === null
    ? NOTHING
    : viewer.isAdmin
      ? {}
      : { OR: [{ ownerId: viewer.id }, { collection: { is: collectionsWhere(viewer) } }] };

export const canSeeSchedule = (viewer: Viewer | null, schedule: { ownerId: string }): boolean =>
  seesByOwner(viewer, schedule.ownerId);

export const schedulesWhere = (viewer: Viewer | null): Prisma.ScheduleWhereInput =>
  viewer === null ? NOTHING : viewer.isAdmin ? {} : { ownerId: viewer.id };
