import type { Prisma } from '../generated/prisma/client.ts';
import { parseGlobalId } from '../graphql/ids.ts';
import type { OperationStatus } from './status.ts';

/** The `OperationFilter` input as GraphQL hands it to `cancelOperations`. */
export interface OperationFilterInput {
  status?: OperationStatus[] | null;
  type?: string | null;
  createdAfter?: Date | null;
  createdBefore?: Date | null;
  collectionId?: string | number | null;
  batchId?: string | number | null;
}

/**
 * The Prisma `where` of a filter — the same criteria `operations` applies (src/operations/list.ts)
 * — without any access rule (callers add the viewer's). Throws a
 * ValidationError at `<at>.collectionId` / `<at>.batchId` when an id is malformed.
 */
export function filterWhere(
  filter: OperationFilterInput | null | undefined,
  at: string[] = ['filter'],
): Prisma.OperationWhereInput {
  const where: Prisma.OperationWhereInput = {};
  if (filter?.status?.length) where.status = { in: filter.status };
  if (filter?.type) where.type = filter.type;
  if (filter?.batchId) where.batchId = parseGlobalId(String(filter.batchId), 'Operation', [...at, 'batchId']);
  if (filter?.collectionId) {
    where.collectionId = parseGlobalId(String(filter.collectionId), 'Collection', [...at, 'collectionId']);
  }
  if (filter?.createdAfter || filter?.createdBefore) {
    where.createdAt = {
      ...(filter.createdAfter ? { gte: filter.createdAfter } : {}),
      ...(filter.createdBefore ? { lt: filter.createdBefore } : {}),
    };
  }
  return where;
}
