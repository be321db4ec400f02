import { encodeGlobalID } from '@pothos/plugin-relay';
import type { Viewer } from '../src/auth/viewer.ts';
import { parseGlobalId } from '../src/graphql/ids.ts';
import { type OperationListFilter, operationPageStatement } from '../src/operations/list.ts';
import { spawnServer, uniquePrefix } from '../test/support/app.ts';
import { tokenFor } from '../test/support/client.ts';
import { REDIS_URL } from '../test/support/services.ts';
import {
  createScratchDatabase,
  defer,
  fixed,
  percentile,
  printTable,
  readArgs,
  runBench,
  type ScratchDatabase,
} from './support.ts';

/**
 * `operations` list latency at scale (SPEC §5, issue 13.4): a scratch database gets `--rows`
 * operations (default 1,000,000) across `--users` users (default 1,000), generated in SQL; an API
 * process (OPSGRAPH_ROLE=api) answers `operations(first: 50)` over HTTP for each case, `--samples`
 * times (default 200) one after the other; p50/p95/max per case, then the query plan of the
 * slowest case's statement (EXPLAIN ANALYZE of what PostgreSQL logged for it).
 *
 *   npm run bench:list [-- --rows 1000000 --users 1000 --samples 200]
 *
 * The data: every user owns rows/users operations, newest first spread over 30 days; 10 % act on
 * one of the owner's two collections, a tenth of collections are public (so a normal user also
 * sees about rows/100 operations of other users); 1 % of users' operations are items of batches
 * of 20; five types, statuses mostly COMPLETED with some FAILED, CANCELLED, PENDING, PROCESSING.
 */

/** The normal user the cases list for (owns ~rows/users operations and a batch item). */
const BENCH_USER = 'bench-user-00008';

const args = readArgs({
  rows: { default: 1_000_000, min: 10_000 },
  users: { default: 1_000, min: 10 },
  samples: { default: 200, min: 20 },
});

const LIST = `query List($filter: OperationFilter, $first: Int, $after: String) {
  operations(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id type status progress { current total } createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface Page {
  edges: { cursor: string; node: { id: string } }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

async function list(url: string, token: string, variables: Record<string, unknown>): Promise<Page> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: LIST, variables }),
  });
  const body = (await response.json()) as { data?: { operations: Page }; errors?: unknown[] };
  if (!body.data?.operations) throw new Error(`list failed: ${JSON.stringify(body.errors)}`);
  return body.data.operations;
}

/** Fills the scratch database: users, collections, operations (batches and items), in SQL. */
async function generate(db: ScratchDatabase, rows: number, users: number): Promise<void> {
  const sql = [
    `INSERT INTO "User" (name) SELECT 'bench-user-' || lpad(i::text, 5, '0') FROM generate_series(1, ${users}) i`,
    `INSERT INTO "Collection" (name, "ownerId", "isPublic", "createdAt")
       SELECT 'c' || k, u.id, (row_number() OVER ()) % 10 = 0, now() - interval '40 days'
       FROM "User" u CROSS JOIN generate_series(1, 2) k WHERE u.name LIKE 'bench-user-%'`,
    // Arrays indexed by position keep the big insert a single scan of generate_series.
    `CREATE TEMP TABLE owners AS SELECT array_agg(id ORDER BY name) AS ids FROM "User" WHERE name LIKE 'bench-user-%'`,
    `CREATE TEMP TABLE colls AS SELECT array_agg(c.id ORDER BY u.name, c.name) AS ids
       FROM "Collection" c JOIN "User" u ON u.id = c."ownerId"`,
    // Batches: one per 2,000 rows, owned like the rows around them.
    `INSERT INTO "Operation" (type, input, "ownerId", status, sequence, "createdAt", "updatedAt", "completedAt")
       SELECT 'batch', '{}', (SELECT ids FROM owners)[1 + (i * 2000) % ${users}], 'COMPLETED', 3,
              now() - (i * 2000) * (interval '30 days' / ${rows}), now(), now()
       FROM generate_series(0, ${Math.floor(rows / 2000) - 1}) i`,
    `CREATE TEMP TABLE batches AS SELECT array_agg(id ORDER BY "createdAt" DESC) AS ids FROM "Operation" WHERE type = 'batch'`,
    // Independent random attributes (seeded, so runs are repeatable): owner, type, status, collection, batch.
    'SELECT setseed(0.42)',
    `INSERT INTO "Operation" (type, input, "ownerId", status, sequence, "progressCurrent", "progressTotal",
                              "createdAt", "updatedAt", "collectionId", "batchId", "batchItemId")
       SELECT (ARRAY['diagnostics.sleep','diagnostics.echo','collection.index','collection.append','collection.export'])[1 + floor(s.t * 5)::int],
              '{}', (SELECT ids FROM owners)[1 + s.o],
              (CASE WHEN s.st < 0.02 THEN 'FAILED' WHEN s.st < 0.04 THEN 'CANCELLED' WHEN s.st < 0.05 THEN 'PENDING'
                    WHEN s.st < 0.06 THEN 'PROCESSING' ELSE 'COMPLETED' END)::"OperationStatus",
              4, 10, 10, now() - s.i * (interval '30 days' / ${rows}), now(),
              CASE WHEN s.c < 0.1 THEN (SELECT ids FROM colls)[1 + 2 * s.o + floor(s.c * 20)::int] END,
              CASE WHEN s.b < 0.01 THEN (SELECT ids FROM batches)[1 + floor(s.b * 100 * ${Math.floor(rows / 2000)})::int] END,
              CASE WHEN s.b < 0.01 THEN 'item-' || s.i END
       FROM (SELECT i, floor(random() * ${users})::int AS o, random() AS t, random() AS st, random() AS c, random() AS b
             FROM generate_series(0, ${rows - 1}) i) s`,
    // What autovacuum does after a load like this: statistics, and the visibility map that lets
    // index-only scans skip the table.
    'VACUUM (ANALYZE)',
  ];
  for (const statement of sql) await db.pool.query(statement);
}

interface Case {
  name: string;
  token: string;
  variables: Record<string, unknown>;
  /** The same page as the list statement sees it, for EXPLAIN. */
  statement: { viewer: Viewer; filter: OperationListFilter; cursorId?: string };
}

async function main(): Promise<void> {
  const db = await createScratchDatabase('list', { migrate: true });
  let started = performance.now();
  await generate(db, args.rows, args.users);
  const n =
    (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "Operation"')).rows[0]?.n ?? 0;
  console.log(`generated ${n} operations in ${fixed((performance.now() - started) / 1000)} s`);

  const userToken = await tokenFor(db.url, BENCH_USER);
  const adminToken = await tokenFor(db.url, 'bench-admin', true);
  const { rows: found } = await db.pool.query<{
    user: string;
    admin: string;
    collection: string;
    batch: string;
  }>(
    `SELECT (SELECT id FROM "User" WHERE name = $1) AS user, (SELECT id FROM "User" WHERE name = 'bench-admin') AS admin,
            (SELECT c.id FROM "Collection" c JOIN "User" u ON u.id = c."ownerId" WHERE u.name = $1 ORDER BY c.name LIMIT 1) AS collection,
            (SELECT o."batchId" FROM "Operation" o JOIN "User" u ON u.id = o."ownerId" WHERE u.name = $1 AND o."batchId" IS NOT NULL LIMIT 1) AS batch`,
    [BENCH_USER],
  );
  const ids = found[0]!;
  const user: Viewer = { id: ids.user, name: BENCH_USER, isAdmin: false };
  const admin: Viewer = { id: ids.admin, name: 'bench-admin', isAdmin: true };

  const server = await spawnServer({
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_ROLE: 'api',
    OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
    LOG_LEVEL: 'error',
  });
  defer(() => server.stop());

  /** The cursor `depth` rows into a viewer's unfiltered list, and its row's id. */
  const cursorAt = async (token: string, depth: number): Promise<{ after: string; id: string }> => {
    let after: string | null = null;
    let id = '';
    let seen = 0;
    while (seen < depth) {
      const page: Page = await list(server.url, token, { first: 100, after });
      seen += page.edges.length;
      after = page.pageInfo.endCursor;
      id = page.edges.at(-1)?.node.id ?? id;
      if (!page.pageInfo.hasNextPage) break;
    }
    return { after: after as string, id: parseGlobalId(id, 'Operation', ['id']) };
  };
  const make = (
    name: string,
    viewer: Viewer,
    filter: Record<string, unknown>,
    listFilter: OperationListFilter,
    deep?: { after: string; id: string },
  ): Case => ({
    name,
    token: viewer === admin ? adminToken : userToken,
    variables: { first: 50, filter, ...(deep ? { after: deep.after } : {}) },
    statement: { viewer, filter: listFilter, ...(deep ? { cursorId: deep.id } : {}) },
  });
  const failed = { status: ['FAILED'] };
  const type = { type: 'collection.index' };
  const cases: Case[] = [
    make('user', user, {}, {}),
    make('admin', admin, {}, {}),
    make('user, status FAILED', user, failed, { statuses: ['FAILED'] }),
    make('admin, status FAILED', admin, failed, { statuses: ['FAILED'] }),
    make('user, type', user, type, type),
    make('admin, type', admin, type, type),
    make(
      'user, collection',
      user,
      { collectionId: encodeGlobalID('Collection', ids.collection) },
      { collectionId: ids.collection },
    ),
    make('user, batch', user, { batchId: encodeGlobalID('Operation', ids.batch) }, { batchId: ids.batch }),
    make('admin, 10,000 deep', admin, {}, {}, await cursorAt(adminToken, 10_000)),
    make('user, 10,000 deep', user, {}, {}, await cursorAt(userToken, 10_000)),
  ];

  const results: { case: Case; times: number[]; rows: number }[] = [];
  for (const c of cases) {
    for (let i = 0; i < 10; i++) await list(server.url, c.token, c.variables); // warm-up
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < args.samples; i++) {
      started = performance.now();
      const page = await list(server.url, c.token, c.variables);
      times.push(performance.now() - started);
      rows = page.edges.length;
    }
    results.push({ case: c, times, rows });
  }
  printTable(
    `operations(first: 50) over HTTP, ${n} rows, ${args.samples} samples each (ms)`,
    ['case', 'rows', 'p50', 'p95', 'max', '≤ 10 ms p95'],
    results.map((r) => [
      r.case.name,
      String(r.rows),
      fixed(percentile(r.times, 50), 2),
      fixed(percentile(r.times, 95), 2),
      fixed(Math.max(...r.times), 2),
      percentile(r.times, 95) <= 10 ? 'yes' : 'NO',
    ]),
  );
  const slowest = results.reduce((a, b) => (percentile(b.times, 95) > percentile(a.times, 95) ? b : a));
  await explain(db, slowest.case);
}

/** Prints the plan PostgreSQL runs for a case's list statement (EXPLAIN ANALYZE, buffers). */
async function explain(db: ScratchDatabase, c: Case): Promise<void> {
  const { viewer, filter, cursorId } = c.statement;
  const { sql, values } = operationPageStatement(viewer, filter, { cursorId, take: 51 });
  const { rows } = await db.pool.query<{ 'QUERY PLAN': string }>(
    `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${sql}`,
    values,
  );
  console.log(`\nplan of the slowest case (${c.name}):`);
  for (const row of rows) console.log(`  ${row['QUERY PLAN']}`);
}

await runBench(main);
