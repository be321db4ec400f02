import { encodeGlobalID } from '@pothos/plugin-relay';
import DataLoader from 'dataloader';
import { NotFoundError } from '../errors.ts';
import type { Collection, Operation } from '../generated/prisma/client.ts';
import type { Context } from '../graphql/context.ts';
import { collectionsWhere, operationsWhere, seesByOwner } from './visibility.ts';

/**
 * Per-request loaders that apply the visibility rule (src/auth/visibility.ts) to relations: every
 * field that leads from one object to an Operation or a Collection resolves through here, so a
 * relation to something the viewer may not see is null.
 *
 * Relation fields are `t.prismaField`s that hand their Pothos `query` (the nested selection's
 * include/select) in: loads with the same query in the same tick become one
 * `findMany({ ...query, where: id IN (…) AND <rule> })`, so a page of rows costs one statement
 * per relation level, not one per row, and the Prisma plugin resolves what lies below from it.
 * Nothing is cached across ticks, so a long-lived subscription context never answers from a
 * stale visibility.
 */
export interface Visible {
  /** The operation with this id when the viewer may see it, else null. */
  operation(id: string | null | undefined, query?: PrismaQuery): Promise<Operation | null>;
  /** The collection with this id when the viewer may see it, else null. */
  collection(id: string | null | undefined, query?: PrismaQuery): Promise<Collection | null>;
  /** Whether the viewer may see this loaded operation (no query for its owner and admins). */
  canSee(operation: Pick<Operation, 'ownerId' | 'collectionId'>): Promise<boolean>;
  /**
   * A mutation's own result (what the viewer just started or cancelled), checked once more: it is
   * always visible to whoever was allowed the mutation, so a failure here is a bug, reported as
   * NotFound rather than shown.
   */
  mustSee<T extends Pick<Operation, 'id' | 'ownerId' | 'collectionId'>>(operation: T): Promise<T>;
}

/** What Pothos hands a prismaField resolver: the include/select for the nested selection. */
export type PrismaQuery = { include?: object; select?: object };

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

type FindMany<T> = (args: { where: object } & PrismaQuery) => Promise<T[]>;

/** One batching loader per distinct query shape (all rows of one list share one). */
function loaderByQuery<T extends { id: string }>(findMany: FindMany<T>, rule: () => object) {
  const loaders = new Map<string, DataLoader<string, T | null>>();
  return (id: string | null | undefined, query: PrismaQuery = {}): Promise<T | null> => {
    if (!id) return Promise.resolve(null);
    const key = JSON.stringify(query);
    let loader = loaders.get(key);
    if (!loader) {
      // The id must come back to match rows to keys, also under a select.
      const shaped = query.select ? { select: { ...query.select, id: true } } : query;
      loader = new DataLoader<string, T | null>(
        async (ids) => {
          const rows = await findMany({
            ...shaped,
            where: { AND: [{ id: { in: [...new Set(ids)] } }, rule()] },
          });
          const byId = new Map(rows.map((row) => [row.id, row]));
          return ids.map((one) => byId.get(one) ?? null);
        },
        { cache: false },
      );
      loaders.set(key, loader);
    }
    return loader.load(id);
  };
}

function createVisible(context: Context): Visible {
  const { db } = context.resources;
  const operation = loaderByQuery<Operation>(
    (args) => db.operation.findMany(args as Parameters<typeof db.operation.findMany>[0]),
    () => operationsWhere(context.viewer),
  );
  const collection = loaderByQuery<Collection>(
    (args) => db.collection.findMany(args as Parameters<typeof db.collection.findMany>[0]),
    () => collectionsWhere(context.viewer),
  );
  const canSee = async (row: Pick<Operation, 'ownerId' | 'collectionId'>) =>
    seesByOwner(context.viewer, row.ownerId) || (await collection(row.collectionId)) !== null;
  return {
    operation,
    collection,
    canSee,
    mustSee: async (row) => {
      if (await canSee(row)) return row;
      throw new NotFoundError('Operation', encodeGlobalID('Operation', row.id));
    },
  };
}
