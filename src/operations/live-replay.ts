import type { Viewer } from '../auth/viewer.ts';
import type { Db } from '../db/prisma.ts';
import type { Operation } from '../generated/prisma/client.ts';
import { type Position, parseSnapshot, type Snapshot } from './live-cursor.ts';
import { type OperationJson, toOperation } from './record.ts';
import type { OperationStatus } from './status.ts';

/** What an `operationsUpdated` stream shows: its filter, parsed, and its scope. */
export interface LiveFilter {
  status: OperationStatus[];
  type: string | null;
  collectionId: string | null;
  batchId: string | null;
  createdAfter: Date | null;
  createdBefore: Date | null;
  /**
   * Only operations owned by this user: a non-admin without `collectionId` follows their own
   * operations (their channel); with `collectionId`, everyone's on it that they may see.
   */
  ownerId: string | null;
}

/** The filter in memory, for live messages (the same test as the SQL below). */
export function matches(filter: LiveFilter, operation: Operation): boolean {
  return (
    (filter.ownerId === null || operation.ownerId === filter.ownerId) &&
    (filter.status.length === 0 || filter.status.includes(operation.status)) &&
    (filter.type === null || operation.type === filter.type) &&
    (filter.collectionId === null || operation.collectionId === filter.collectionId) &&
    (filter.batchId === null || operation.batchId === filter.batchId) &&
    (filter.createdAfter === null || operation.createdAt >= filter.createdAfter) &&
    (filter.createdBefore === null || operation.createdAt < filter.createdBefore)
  );
}

/** `SELECT pg_current_snapshot()`: where a stream started without `after` begins. */
export async function currentSnapshot(db: Db): Promise<Snapshot> {
  const [row] = await db.$queryRawUnsafe<{ snapshot: string }[]>(
    'SELECT pg_current_snapshot()::text AS snapshot',
  );
  return parseSnapshot(row!.snapshot)!;
}

export interface Replayed {
  /** The snapshot the rows were read in (the same statement: exactly the changes it saw). */
  snapshot: Snapshot;
  /** Current state of each operation owed to the stream, in id order (at most `limit` + 1). */
  operations: Operation[];
}

/**
 * The operations with a change the position does not cover, as they are now, that the viewer may
 * see (src/auth/visibility.ts, in SQL: admin, owner, or the collection's owner or public) and the
 * filter matches — read together with the snapshot of the reading statement.
 *
 * Cost: a range scan of `OperationEvent_xid_idx` from the base snapshot's xmin (the events of
 * every user since the cursor was made: hence the cursor age limit), one primary-key lookup per
 * changed operation. `delivered` is applied by the caller (it is at most 16 entries).
 */
export async function replayChanges(
  db: Db,
  viewer: Viewer,
  filter: LiveFilter,
  position: Position,
  limit: number,
): Promise<Replayed> {
  const [row] = await db.$queryRawUnsafe<{ snapshot: string; operations: OperationJson[] }[]>(
    `SELECT pg_current_snapshot()::text AS snapshot,
            COALESCE((SELECT json_agg(row_to_json(picked) ORDER BY picked.id) FROM (
              SELECT o.* FROM "Operation" o
                LEFT JOIN "Collection" c ON c.id = o."collectionId"
               WHERE o.id IN (
                       SELECT e."operationId" FROM "OperationEvent" e
                        WHERE e.xid >= pg_snapshot_xmin($1::pg_snapshot)
                          AND NOT pg_visible_in_snapshot(e.xid, $1::pg_snapshot)
                          AND NOT EXISTS (
                                SELECT 1 FROM unnest($2::text[], $3::uuid[]) AS l(s, k)
                                 WHERE e."operationId" <= l.k AND pg_visible_in_snapshot(e.xid, l.s::pg_snapshot)))
                 AND ($4::boolean OR o."ownerId" = $5::uuid OR c."ownerId" = $5::uuid OR c."isPublic")
                 AND ($6::uuid IS NULL OR o."ownerId" = $6::uuid)
                 AND (cardinality($7::text[]) = 0 OR o.status::text = ANY($7::text[]))
                 AND ($8::text IS NULL OR o.type = $8::text)
                 AND ($9::uuid IS NULL OR o."collectionId" = $9::uuid)
                 AND ($10::uuid IS NULL OR o."batchId" = $10::uuid)
                 AND ($11::timestamptz IS NULL OR o."createdAt" >= $11::timestamptz)
                 AND ($12::timestamptz IS NULL OR o."createdAt" < $12::timestamptz)
               ORDER BY o.id
               LIMIT $13
            ) picked), '[]'::json) AS operations`,
    position.base.text,
    position.levels.map((level) => level.snapshot.text),
    position.levels.map((level) => level.lastId),
    viewer.isAdmin,
    viewer.id,
    filter.ownerId,
    filter.status,
    filter.type,
    filter.collectionId,
    filter.batchId,
    filter.createdAfter,
    filter.createdBefore,
    limit + 1,
  );
  return { snapshot: parseSnapshot(row!.snapshot)!, operations: row!.operations.map(toOperation) };
}
