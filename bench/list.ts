import { encodeGlobalID } from '@pothos/plugin-relay';
import pg from 'pg';
import type { Viewer } from '../src/auth/viewer.ts';
import { migrate } from '../src/db/migrate.ts';
import { parseGlobalId } from '../src/graphql/ids.ts';
import { type OperationListFilter, operationRowsStatement } from '../src/operations/list.ts';
import { spawnServer, uniquePrefix } from '../test/support/app.ts';
import { tokenFor } from '../test/support/client.ts';
import { adminQuery } from '../test/support/db.ts';
import { ADMIN_DATABASE_URL, databaseUrl, REDIS_URL } from '../test/support/services.ts';
import {
  cpuSeconds,
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
 * times (default 200) one after the other; p50/p95/max and the server's CPU per request per case;
 * then, per case, the list statement's planning time unprepared (as it was planned on every request
 * before) and prepared (as the server now runs it, with the generic plan PostgreSQL may switch to
 * forced), its execution time, and whether it stays on indexes; then the slowest case's plan.
 * BENCH_SERVER_NODE_OPTIONS is passed to the server as NODE_OPTIONS (e.g. `--cpu-prof`).
 *
 *   npm run bench:list [-- --rows 1000000 --users 1000 --samples 200]
 *
 * BENCH_LIST_DB=<name> keeps the generated database under that name (created and filled on the
 * first run, reused as it is by later ones), to compare code changes without regenerating.
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

/** The database BENCH_LIST_DB names (kept, migrated and filled once), or a scratch one. */
async function benchDatabase(): Promise<{ db: ScratchDatabase; filled: boolean }> {
  const name = process.env.BENCH_LIST_DB;
  if (!name) return { db: await createScratchDatabase('list', { migrate: true }), filled: false };
  const url = databaseUrl(name);
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  const exists = await admin
    .query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    .finally(() => admin.end());
  if (exists.rows.length === 0) {
    await adminQuery(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    await migrate(url);
  }
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  defer(() => pool.end());
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "Operation"');
  return { db: { name, url, pool, drop: async () => {} }, filled: (rows[0]?.n ?? 0) > 0 };
}

async function main(): Promise<void> {
  const { db, filled } = await benchDatabase();
  let started = performance.now();
  if (!filled) await generate(db, args.rows, args.users);
  const n =
    (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "Operation"')).rows[0]?.n ?? 0;
  console.log(
    filled
      ? `reusing ${db.name}: ${n} operations`
      : `generated ${n} operations in ${fixed((performance.now() - started) / 1000)} s`,
  );

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
    // e.g. BENCH_SERVER_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the server.
    ...(process.env.BENCH_SERVER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_SERVER_NODE_OPTIONS } : {}),
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

  const results: { case: Case; times: number[]; rows: number; cpuMs: number }[] = [];
  for (const c of cases) {
    for (let i = 0; i < 10; i++) await list(server.url, c.token, c.variables); // warm-up
    const times: number[] = [];
    let rows = 0;
    const cpuBefore = await cpuSeconds(server.child.pid);
    for (let i = 0; i < args.samples; i++) {
      started = performance.now();
      const page = await list(server.url, c.token, c.variables);
      times.push(performance.now() - started);
      rows = page.edges.length;
    }
    const cpuMs = ((await cpuSeconds(server.child.pid)) - cpuBefore) * 1000;
    results.push({ case: c, times, rows, cpuMs: cpuMs / args.samples });
  }
  printTable(
    `operations(first: 50) over HTTP, ${n} rows, ${args.samples} samples each (ms; server CPU per request, 10 ms ticks)`,
    ['case', 'rows', 'p50', 'p95', 'max', 'server CPU', '≤ 10 ms p95'],
    results.map((r) => [
      r.case.name,
      String(r.rows),
      fixed(percentile(r.times, 50), 2),
      fixed(percentile(r.times, 95), 2),
      fixed(Math.max(...r.times), 2),
      fixed(r.cpuMs, 2),
      percentile(r.times, 95) <= 10 ? 'yes' : 'NO',
    ]),
  );
  const plans = [];
  for (const r of results) plans.push({ result: r, plan: await explain(db, r.case) });
  printTable(
    'the list statement: planned each time (as before) vs prepared as the server runs it (its generic plan forced, run twice): EXPLAIN ANALYZE of the 2nd run (ms)',
    ['case', 'planning unprepared', 'planning', 'execution', 'indexes only'],
    plans.map(({ result, plan }) => [
      result.case.name,
      fixed(plan.planningUnpreparedMs, 3),
      fixed(plan.planningMs, 3),
      fixed(plan.executionMs, 3),
      plan.lines.some((line) => /Seq Scan on "Operation"/.test(line)) ? 'NO' : 'yes',
    ]),
  );
  const slowest = plans.reduce((a, b) =>
    percentile(b.result.times, 95) > percentile(a.result.times, 95) ? b : a,
  );
  console.log(`\nplan of the slowest case (${slowest.result.case.name}):`);
  for (const line of slowest.plan.lines) console.log(`  ${line}`);
}

/**
 * The plan PostgreSQL runs for a case's list statement as the server sends it: prepared, with the
 * generic plan PostgreSQL may switch to after five runs forced (so a plan that would leave the
 * indexes shows here), EXPLAIN ANALYZE of a second run (the first one builds that plan).
 */
async function explain(
  db: ScratchDatabase,
  c: Case,
): Promise<{ lines: string[]; planningUnpreparedMs: number; planningMs: number; executionMs: number }> {
  const { viewer, filter, cursorId } = c.statement;
  const { sql, values } = operationRowsStatement(viewer, filter, { cursorId, take: 51 });
  const client = await db.pool.connect();
  try {
    // The same statement unprepared, as it ran before: parsed and planned on every run.
    const unprepared = async () =>
      (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF) ${sql}`, values)).rows.map(
        (row) => row['QUERY PLAN'],
      );
    await unprepared();
    const planningUnpreparedMs = timeOf(await unprepared(), 'Planning Time');
    await client.query('SET plan_cache_mode = force_generic_plan');
    await client.query(`PREPARE bench_list AS ${sql}`);
    // EXECUTE takes its arguments as SQL (no bind parameters): the values as literals.
    const literal = (value: unknown) =>
      client.escapeLiteral(
        Array.isArray(value)
          ? `{${value.join(',')}}`
          : value instanceof Date
            ? value.toISOString()
            : String(value),
      );
    const args = values.map(literal).join(', ');
    const run = () =>
      client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_list${args ? `(${args})` : ''}`,
      );
    await run();
    const lines = (await run()).rows.map((row) => row['QUERY PLAN']);
    return {
      lines,
      planningUnpreparedMs,
      planningMs: timeOf(lines, 'Planning Time'),
      executionMs: timeOf(lines, 'Execution Time'),
    };
  } finally {
    await client.query('DEALLOCATE ALL; RESET plan_cache_mode').catch(() => {});
    client.release();
  }
}

/** The time on an EXPLAIN ANALYZE line such as "Planning Time: 0.548 ms". */
const timeOf = (lines: string[], label: string) =>
  Number(lines.find((line) => line.startsWith(label))?.match(/([\d.]+) ms/)?.[1] ?? Number.NaN);

await runBench(main);
