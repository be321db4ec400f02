import type { Viewer } from '../auth/viewer.ts';
import { type Db, preparedByText } from '../db/prisma.ts';
import { type Operation, type OperationStatus, Prisma } from '../generated/prisma/client.ts';

/** What `operations(filter)` narrows to, with ids already parsed. */
export interface OperationListFilter {
  statuses?: OperationStatus[];
  type?: string;
  batchId?: string;
  collectionId?: string;
  createdAfter?: Date;
  createdBefore?: Date;
}

/** A page as Pothos's prismaConnection asks for it: after/before a row, |take| rows, ± direction. */
export interface OperationListPage {
  /** The row the page starts after (take > 0) or ends before (take < 0); none: from the start. */
  cursorId?: string;
  /** Rows wanted (Pothos asks one more than the page to learn whether another follows). */
  take: number;
}

/**
 * The ids of one page of operations the viewer may see, newest first (ties by id), chosen by one
 * statement that stays on indexes however large the table (issue 13, `npm run bench:list`):
 *
 * - an admin, or a list narrowed to one collection or one batch: one ordered index range
 *   (`(createdAt, id)`, `(collectionId, createdAt, id)`, or a batch's ≤ 1,000 items);
 * - anyone else: the visibility rule (src/auth/visibility.ts) as ordered index ranges merged —
 *   their own operations through `(ownerId, createdAt, id)`, other users' operations on public
 *   collections through one partial index on `(createdAt, id) WHERE "onPublicCollection"` (a
 *   trigger-kept copy of the collection's `isPublic`), and other users' operations on the
 *   viewer's own private collections through `(collectionId, createdAt, id)`, one range per such
 *   collection — each stopping after |take| rows, instead of one OR that makes PostgreSQL walk
 *   every user's rows. Its cost grows with neither the number of operations nor the number of
 *   public collections.
 *
 * Those indexes INCLUDE status, type, collection and batch, so the filters are checked on index
 * entries without reading the rows. The cursor row's position is read in the same statement; a
 * cursor whose row is gone gives an empty page. Rows come back in page order (oldest last),
 * whatever the direction, as Prisma returns a negative `take`.
 */
export async function pageOperationIds(
  db: Db,
  viewer: Viewer,
  filter: OperationListFilter,
  page: OperationListPage,
): Promise<string[]> {
  const { sql, values } = operationPageStatement(viewer, filter, page);
  const rows = await db.$queryRawUnsafe<{ id: string }[]>(preparedList(sql), ...values);
  const ids = rows.map((row) => row.id);
  return page.take < 0 ? ids.reverse() : ids;
}

/**
 * The page of `pageOperationIds` as whole rows (every column of the model, as `findMany` without
 * a select returns them), newest first, in the same statement: one round trip for a page whose query
 * selects no relation, instead of the ids and then the rows.
 */
export async function pageOperations(
  db: Db,
  viewer: Viewer,
  filter: OperationListFilter,
  page: OperationListPage,
): Promise<Operation[]> {
  const { sql, values } = operationRowsStatement(viewer, filter, page);
  return db.$queryRawUnsafe<Operation[]>(preparedList(sql), ...values);
}

/** The statement of `pageOperations` (for EXPLAIN too). */
export function operationRowsStatement(
  viewer: Viewer,
  filter: OperationListFilter,
  page: OperationListPage,
): { sql: string; values: unknown[] } {
  const { sql, values } = operationPageStatement(viewer, filter, page);
  return {
    sql: `SELECT ${OPERATION_COLUMNS} FROM (${sql}) page JOIN "Operation" o ON o.id = page.id
      ORDER BY o."createdAt" DESC, o.id DESC`,
    values,
  };
}

/**
 * The model's columns by name, as `findMany` reads them: never `o.*`, whose result type a
 * migration adding a column would change under the prepared statements of running servers
 * (PostgreSQL refuses such a statement: "cached plan must not change result type").
 */
const OPERATION_COLUMNS = Object.values(Prisma.OperationScalarFieldEnum)
  .map((column) => `o."${column}"`)
  .join(', ');

/**
 * How many operations the viewer may see match the filter, counting at most `cap`: the page's own
 * statement, unordered, with a limit of `cap` on every range and on the whole, so a count reads at
 * most about `cap` index entries (plus one probe per visible collection) however large the table.
 */
export async function countOperations(
  db: Db,
  viewer: Viewer,
  filter: OperationListFilter,
  cap: number,
): Promise<number> {
  // Unordered: every LIMIT stops its scan at `cap` rows, whichever they are.
  const { sql, values } = operationPageStatement(viewer, filter, { take: cap }, { ordered: false });
  const rows = await db.$queryRawUnsafe<{ n: number }[]>(
    preparedList(`SELECT count(*)::int AS n FROM (${sql}) counted`),
    ...values,
  );
  return rows[0]?.n ?? 0;
}

/** Most list statements (shapes × page sizes) a process prepares; others are planned each time. */
export const MAX_PREPARED_LISTS = 64;

/**
 * A list statement marked to be prepared once per pooled connection (src/db/prisma.ts `prepared`),
 * named after a hash of its text: each shape (which filters, cursor, direction, viewer kind) and
 * page size is its own statement, with the viewer, filter values and cursor as parameters. Planning
 * was most of the statement's time in the database (~0.5 ms of ~0.6–1 ms at 1,000,000 rows); the
 * plans PostgreSQL then reuses (its generic plans after five runs) stay on the same indexes
 * (`npm run bench:list` prints them). At most MAX_PREPARED_LISTS texts get a name, so a client
 * trying every combination cannot grow each connection's statement cache without bound.
 */
export const preparedList = preparedByText('list', MAX_PREPARED_LISTS);

/** The statement of `pageOperationIds` (its rows nearest the cursor first), for EXPLAIN too. */
export function operationPageStatement(
  viewer: Viewer,
  filter: OperationListFilter,
  page: OperationListPage,
  { ordered = true }: { ordered?: boolean } = {},
): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (value: unknown, cast: string) => {
    values.push(value);
    return `$${values.length}::${cast}`;
  };
  const backward = page.take < 0;
  const limit = Math.abs(page.take);
  const order = backward ? 'ASC' : 'DESC';
  const orderBy = (prefix: string) =>
    ordered ? `ORDER BY ${prefix}"createdAt" ${order}, ${prefix}id ${order}` : '';
  const me = viewer.isAdmin ? undefined : param(viewer.id, 'uuid');
  const seenCollections = `SELECT c.id FROM "Collection" c WHERE c."ownerId" = ${me} OR c."isPublic"`;
  /** The visibility rule as a filter on `o` (none for admins). */
  const visibleTo = (o: string) =>
    me === undefined ? [] : [`(${o}."ownerId" = ${me} OR ${o}."collectionId" IN (${seenCollections}))`];

  const conditions: string[] = [];
  if (filter.statuses?.length)
    conditions.push(`o.status = ANY(${param(filter.statuses, '"OperationStatus"[]')})`);
  if (filter.type !== undefined) conditions.push(`o.type = ${param(filter.type, 'text')}`);
  if (filter.batchId !== undefined) conditions.push(`o."batchId" = ${param(filter.batchId, 'uuid')}`);
  if (filter.collectionId !== undefined)
    conditions.push(`o."collectionId" = ${param(filter.collectionId, 'uuid')}`);
  if (filter.createdAfter) conditions.push(`o."createdAt" >= ${param(filter.createdAfter, 'timestamptz')}`);
  if (filter.createdBefore) conditions.push(`o."createdAt" < ${param(filter.createdBefore, 'timestamptz')}`);
  if (page.cursorId !== undefined) {
    // The cursor's row only when the viewer may see it: a cursor made from the id of someone
    // else's operation gives an empty page, not a probe of when that operation was created.
    const cursor = param(page.cursorId, 'uuid');
    const anchor = `(SELECT a."createdAt" FROM "Operation" a WHERE ${[`a.id = ${cursor}`, ...visibleTo('a')].join(' AND ')})`;
    conditions.push(`(o."createdAt", o.id) ${backward ? '>' : '<'} (${anchor}, ${cursor})`);
  }

  const branch = (where: string[]) =>
    `(SELECT o.id, o."createdAt" FROM "Operation" o
      WHERE ${where.length ? where.join(' AND ') : 'true'}
      ${orderBy('o.')} LIMIT ${limit})`;

  let sql: string;
  if (me === undefined) {
    sql = branch(conditions);
  } else if (filter.collectionId !== undefined || filter.batchId !== undefined) {
    // One collection or one batch is a short index range already: the rule as a plain filter.
    sql = branch([...conditions, ...visibleTo('o')]);
  } else {
    // Other users' operations the viewer sees through a collection: those on public collections
    // as one range of their partial index (`onPublicCollection` mirrors the collection's
    // `isPublic`), and those on the viewer's own private collections one collection at a time
    // (LATERAL: a few ranges, usually empty). Disjoint, so no row appears twice.
    const others = [...conditions, `o."ownerId" <> ${me}`];
    const onOwnPrivate = `(SELECT x.id, x."createdAt" FROM "Collection" c CROSS JOIN LATERAL
        ${branch([...others, 'o."collectionId" = c.id'])} x
      WHERE c."ownerId" = ${me} AND NOT c."isPublic"
      ${orderBy('x.')} LIMIT ${limit})`;
    sql = `SELECT id, "createdAt" FROM (
      ${branch([...conditions, `o."ownerId" = ${me}`])}
      UNION ALL
      ${branch([...others, 'o."onPublicCollection"'])}
      UNION ALL
      ${onOwnPrivate}
    ) page ${orderBy('')} LIMIT ${limit}`;
  }
  return { sql, values };
}
