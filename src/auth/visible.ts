import { encodeGlobalID } from '@pothos/plugin-relay';
import DataLoader from 'dataloader';
import { NotFoundError } from '../errors.ts';
import type { Collection, Operation } from '../generated/prisma/client.ts';
import type { Context } from '../graphql/context.ts';
import { collectionsWhere, operationsWhere, seesByOwner } from './visibility.ts';

/**
 * Per-request loaders that apply the visibility rule (src/auth/visibility.ts) to relations: every
 * field that leads from one object to an Operation or a Collection resolves through here, so a
 * relation to something the viewer may not see is null. Loads in the same tick are batched into
 * one `findMany … WHERE id IN (…) AND <rule>` (no N+1). Nothing is cached across ticks, so a
 * long-lived subscription context never answers from a stale visibility.
 */
export interface Visible {
  /** The operation with this id when the viewer may see it, else null. */
  operation(id: string | null | undefined): Promise<Operation | null>;
  /** The collection with this id when the viewer may see it, else null. */
  collection(id: string | null | undefined): Promise<Collection | null>;
  /** Whether the viewer may see this loaded operation (no query for its owner and admins). */
  canSee(operation: Pick<Operation, 'ownerId' | 'collectionId'>): Promise<boolean>;
  /**
   * A mutation's own result (what the viewer just started or cancelled), checked once more: it is
   * always visible to whoever was allowed the mutation, so a failure here is a bug, reported as
   * NotFound rather than shown.
   */
  mustSee<T extends Pick<Operation, 'id' | 'ownerId' | 'collectionId'>>(operation: T): Promise<T>;
}

const perContext = new WeakMap<Context, Visible>();

/** The visibility loaders of this request (created on first use). */
export function visible(context: Context): Visible {
  let found = perContext.get(context);
  if (!found) {
    found = createVisible(context);
    perContext.set(context, found);
  }
  return found;
}

function byIds<T extends { id: string }>(load: (ids: string[]) => Promise<T[]>) {
  return new DataLoader<string, T | null>(
    async (ids) => {
      const rows = await load([...new Set(ids)]);
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    },
    { cache: false },
  );
}

function createVisible(context: Context): Visible {
  const { db } = context.resources;
  const operations = byIds((ids) =>
    db.operation.findMany({ where: { AND: [{ id: { in: ids } }, operationsWhere(context.viewer)] } }),
  );
  const collections = byIds((ids) =>
    db.collection.findMany({ where: { AND: [{ id: { in: ids } }, collectionsWhere(context.viewer)] } }),
  );
  const collection = (id: string | null | undefined) => (id ? collections.load(id) : Promise.resolve(null));
  const canSee = async (operation: Pick<Operation, 'ownerId' | 'collectionId'>) =>
    seesByOwner(context.viewer, operation.ownerId) || (await collection(operation.collectionId)) !== null;
  return {
    operation: (id) => (id ? operations.load(id) : Promise.resolve(null)),
    collection,
    canSee,
    mustSee: async (operation) => {
      if (await canSee(operation)) return operation;
      throw new NotFoundError('Operation', encodeGlobalID('Operation', operation.id));
    },
  };
}
