import { randomUUID } from 'node:crypto';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListOperationsQueryVariables, OperationFilter, OperationStatus } from '../gql/graphql.ts';
import { graphql } from '../gql/index.ts';
import { startTestApp } from '../support/app.ts';
import { gql, tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { ListOperations, ListOperationsDetailed } from '../support/documents.ts';

interface Row {
  id: string;
  type: string;
  status: OperationStatus;
  owner: 'alice' | 'bob';
  createdAt: Date;
}

const STATUSES: OperationStatus[] = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'];
const TYPES = ['index.build', 'export.file', 'diagnostics.sleep'];
const BASE = Date.parse('2026-01-01T00:00:00.000Z');

// alice: 30 rows of mixed types and statuses, created in pairs that share a timestamp (ties).
// bob: 120 rows, interleaved in time with alice's, so the admin sees 150 (over the page maximum).
const rows: Row[] = [
  ...Array.from({ length: 30 }, (_, i) => ({
    id: randomUUID(),
    type: TYPES[i % 3]!,
    status: STATUSES[i % 5]!,
    owner: 'alice' as const,
    createdAt: new Date(BASE + Math.floor((i * 2) / 3) * 60_000),
  })),
  ...Array.from({ length: 120 }, (_, i) => ({
    id: randomUUID(),
    type: 'bulk.work',
    status: STATUSES[i % 5]!,
    owner: 'bob' as const,
    createdAt: new Date(BASE + i * 17_000),
  })),
];

/** Newest first, ties by id descending (PostgreSQL compares UUIDs like lower-case hex strings). */
const newestFirst = (list: Row[]) =>
  [...list].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1));
const ownedBy = (owner: Row['owner']) => newestFirst(rows.filter((row) => row.owner === owner));
const uuidOf = (globalId: string) => Buffer.from(globalId, 'base64').toString().split(':')[1];

let db: TestDatabase;
let app: Awaited<ReturnType<typeof startTestApp>>;
let statements = 0;
const tokens = {} as Record<'alice' | 'bob' | 'root', string>;

beforeAll(async () => {
  db = await createTestDatabase();
  // API only: the rows below are written directly, with no jobs, and a worker's reconciler would
  // (rightly) repair the unfinished ones, adding events while the tests read them.
  app = await startTestApp(db.url, { role: 'api' }, { db: { onQuery: () => (statements += 1) } });
  for (const name of ['alice', 'bob', 'root'] as const)
    tokens[name] = await tokenFor(db.url, name, name === 'root');
  const users = await db.query<{ id: string; name: string }>('SELECT id, name FROM "User"');
  const userId = (name: string) => users.find((user) => user.name === name)!.id;
  await db.query(
    `INSERT INTO "Operation" (id, type, input, "ownerId", status, sequence, "createdAt", "updatedAt")
     SELECT id, type, '{}'::jsonb, owner, status, 2, created, created
     FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::"OperationStatus"[], $5::timestamptz[])
       AS t(id, type, owner, status, created)`,
    [
      rows.map((row) => row.id),
      rows.map((row) => row.type),
      rows.map((row) => userId(row.owner)),
      rows.map((row) => row.status),
      rows.map((row) => row.createdAt.toISOString()),
    ],
  );
  await db.query(
    `INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent")
     SELECT o.id, s, CASE s WHEN 1 THEN 'CREATED' ELSE 'STARTED' END, o.status, 0
     FROM "Operation" o, generate_series(1, 2) s`,
  );
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

async function list(token: string, variables: ListOperationsQueryVariables) {
  const response = await gql(app.url, ListOperations, variables, token);
  if (response.errors) throw new Error(JSON.stringify(response.errors));
  return response.data!.operations;
}

const ids = (connection: Awaited<ReturnType<typeof list>>) => connection.edges.map((e) => uuidOf(e.node.id)!);

describe('operations connection', () => {
  it('lists newest first, breaking createdAt ties by id descending', async () => {
    const expected = ownedBy('alice');
    // The data really has ties, so the id tie-break is exercised.
    expect(new Set(expected.map((row) => row.createdAt.getTime())).size).toBeLessThan(expected.length);
    const page = await list(tokens.alice, { first: 100 });
    expect(ids(page)).toEqual(expected.map((row) => row.id));
    expect(page.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
  });

  it('filters by status list, type, time range, and all of them combined', async () => {
    const alice = ownedBy('alice');
    const after = alice[20]!.createdAt; // inclusive bound: a row created exactly then is listed
    const before = alice[5]!.createdAt; // exclusive bound: a row created exactly then is not
    const inRange = (row: Row) => row.createdAt >= after && row.createdAt < before;
    const cases: [OperationFilter, (row: Row) => boolean][] = [
      [{ status: ['FAILED', 'CANCELLED'] }, (row) => row.status === 'FAILED' || row.status === 'CANCELLED'],
      [{ type: 'export.file' }, (row) => row.type === 'export.file'],
      [{ createdAfter: after.toISOString() }, (row) => row.createdAt >= after],
      [{ createdBefore: before.toISOString() }, (row) => row.createdAt < before],
      [{ createdAfter: after.toISOString(), createdBefore: before.toISOString() }, inRange],
      [
        { status: ['PENDING', 'COMPLETED'], type: 'index.build', createdAfter: after.toISOString() },
        (row) =>
          ['PENDING', 'COMPLETED'].includes(row.status) &&
          row.type === 'index.build' &&
          row.createdAt >= after,
      ],
    ];
    for (const [filter, keep] of cases) {
      const expected = alice.filter(keep).map((row) => row.id);
      expect(expected.length, JSON.stringify(filter)).toBeGreaterThan(0);
      expect(expected.length, JSON.stringify(filter)).toBeLessThan(alice.length);
      expect(ids(await list(tokens.alice, { filter, first: 100 })), JSON.stringify(filter)).toEqual(expected);
    }
  });

  it('pages forward with first/after through every row exactly once, in order', async () => {
    const expected = ownedBy('alice').map((row) => row.id);
    for (const size of [6, 7]) {
      const seen: string[] = [];
      let after: string | null = null;
      for (let pageNo = 0; ; pageNo += 1) {
        const page = await list(tokens.alice, { first: size, after });
        seen.push(...ids(page));
        expect(page.pageInfo.hasPreviousPage).toBe(pageNo > 0);
        expect(page.pageInfo.hasNextPage).toBe(seen.length < expected.length);
        expect(page.pageInfo.startCursor).toBe(page.edges[0]?.cursor ?? null);
        expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
        if (!page.pageInfo.hasNextPage) break;
        after = page.pageInfo.endCursor!;
      }
      expect(seen).toEqual(expected);
    }
  });

  it('pages backward with last/before in the same order', async () => {
    const expected = ownedBy('alice').map((row) => row.id);
    const seen: string[] = [];
    let before: string | null = null;
    for (;;) {
      const page = await list(tokens.alice, { last: 7, before });
      seen.unshift(...ids(page));
      expect(page.pageInfo.hasNextPage).toBe(before !== null);
      expect(page.pageInfo.hasPreviousPage).toBe(seen.length < expected.length);
      if (!page.pageInfo.hasPreviousPage) break;
      before = page.pageInfo.startCursor!;
    }
    expect(seen).toEqual(expected);
  });

  it("shows users only their own operations and admins everyone's", async () => {
    const everyone = async (token: string) => {
      const seen: { id: string; owner: string }[] = [];
      let after: string | null = null;
      for (;;) {
        const page = await list(token, { first: 40, after });
        seen.push(...page.edges.map((e) => ({ id: uuidOf(e.node.id)!, owner: e.node.owner.name })));
        if (!page.pageInfo.hasNextPage) return seen;
        after = page.pageInfo.endCursor!;
      }
    };
    const expectOwnRows = (seen: { id: string; owner: string }[], expected: Row[]) => {
      expect(seen.map((s) => s.id)).toEqual(expected.map((row) => row.id));
      expect(seen.map((s) => s.owner)).toEqual(expected.map((row) => row.owner));
    };
    expectOwnRows(await everyone(tokens.alice), ownedBy('alice'));
    expectOwnRows(await everyone(tokens.bob), ownedBy('bob'));
    expectOwnRows(await everyone(tokens.root), newestFirst(rows));
    expect(ids(await list(tokens.alice, { filter: { type: 'bulk.work' } }))).toEqual([]);
  });

  it('caps first: 1000 at the 100-row maximum and says more rows exist', async () => {
    const page = await list(tokens.root, { first: 1000 });
    expect(ids(page)).toEqual(
      newestFirst(rows)
        .slice(0, 100)
        .map((row) => row.id),
    );
    expect(page.pageInfo.hasNextPage).toBe(true);
    const rest = await list(tokens.root, { first: 1000, after: page.pageInfo.endCursor });
    expect(ids(rest)).toEqual(
      newestFirst(rows)
        .slice(100)
        .map((row) => row.id),
    );
    expect(rest.pageInfo.hasNextPage).toBe(false);
  });

  it('a page of 50 runs a constant number of SQL statements', async () => {
    const count = async (first: number) => {
      statements = 0;
      const response = await gql(app.url, ListOperationsDetailed, { first }, tokens.root);
      const counted = statements;
      expect(response.errors).toBeUndefined();
      const edges = response.data!.operations.edges;
      expect(edges).toHaveLength(first);
      for (const { node } of edges) {
        expect(node.owner.name).toMatch(/^(alice|bob)$/);
        expect(node.events.edges.map((e) => e.node.sequence)).toEqual([1, 2]);
      }
      return counted;
    };
    const small = await count(5);
    const large = await count(50);
    console.log(`SQL statements: page of 5 → ${small}, page of 50 → ${large}`);
    expect(small).toBeGreaterThan(0);
    expect(large).toBe(small);
  });

  it("merges other users' operations on collections the viewer may see into the page, and counts them", async () => {
    const carol = await tokenFor(db.url, 'carol');
    const dave = await tokenFor(db.url, 'dave');
    const users = await db.query<{ id: string; name: string }>('SELECT id, name FROM "User"');
    const userId = (name: string) => users.find((user) => user.name === name)!.id;
    const collections = await db.query<{ id: string; name: string }>(
      `INSERT INTO "Collection" (name, "ownerId", "isPublic") VALUES
         ('alice-private', $1, false), ('bob-public', $2, true), ('bob-private', $2, false)
       RETURNING id, name`,
      [userId('alice'), userId('bob')],
    );
    const collection = (name: string) => collections.find((c) => c.name === name)!.id;
    // carol's operations, created between alice's rows: on alice's private collection, on bob's
    // public one, on bob's private one, and on none.
    const carols = [
      { id: randomUUID(), collection: collection('alice-private'), at: BASE + 90_000 },
      { id: randomUUID(), collection: collection('bob-public'), at: BASE + 250_000 },
      { id: randomUUID(), collection: collection('bob-private'), at: BASE + 400_000 },
      { id: randomUUID(), collection: null, at: BASE + 410_000 },
    ];
    await db.query(
      `INSERT INTO "Operation" (id, type, input, "ownerId", status, sequence, "createdAt", "updatedAt", "collectionId")
       SELECT id, 'collection.index', '{}'::jsonb, $1, 'COMPLETED', 1, created, created, coll
       FROM unnest($2::uuid[], $3::timestamptz[], $4::uuid[]) AS t(id, created, coll)`,
      [
        userId('carol'),
        carols.map((c) => c.id),
        carols.map((c) => new Date(c.at).toISOString()),
        carols.map((c) => c.collection),
      ],
    );
    const seenBy = async (token: string, filter?: OperationFilter) => {
      const response = await gql(app.url, ListOperationsCounted, { first: 100, filter }, token);
      if (response.errors) throw new Error(JSON.stringify(response.errors));
      const { edges, totalCount } = response.data!.operations;
      return { ids: edges.map((e) => uuidOf(e.node.id)!), totalCount };
    };
    const newest = (list: { id: string; at: number }[]) =>
      [...list].sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1)).map((x) => x.id);
    const alices = ownedBy('alice').map((row) => ({ id: row.id, at: row.createdAt.getTime() }));

    // alice: her own rows with carol's on her collection and on the public one, in time order.
    const alice = await seenBy(tokens.alice);
    expect(alice.ids).toEqual(newest([...alices, carols[0]!, carols[1]!]));
    expect(alice.totalCount).toBe(32);
    // dave sees only what is on the public collection; carol all of hers.
    expect(await seenBy(dave)).toEqual({ ids: [carols[1]!.id], totalCount: 1 });
    expect(await seenBy(carol)).toEqual({ ids: newest(carols), totalCount: 4 });
    // Filters keep the rule: a private collection of someone else shows nothing.
    const on = (name: string) => ({ collectionId: encodeGlobalID('Collection', collection(name)) });
    expect(await seenBy(dave, on('bob-private'))).toEqual({ ids: [], totalCount: 0 });
    expect(await seenBy(dave, on('bob-public'))).toEqual({ ids: [carols[1]!.id], totalCount: 1 });
    expect(await seenBy(tokens.bob, { type: 'collection.index' })).toEqual({
      ids: [carols[2]!.id, carols[1]!.id],
      totalCount: 2,
    });

    // A collection made private takes its operations out of everyone else's list in the same
    // statement, and made public again brings them back (the list reads a trigger-kept copy of
    // the flag); a collection deleted leaves them only to their owner.
    const setPublic = (name: string, isPublic: boolean) =>
      db.query('UPDATE "Collection" SET "isPublic" = $2 WHERE id = $1', [collection(name), isPublic]);
    await setPublic('bob-public', false);
    expect(await seenBy(dave)).toEqual({ ids: [], totalCount: 0 });
    expect((await seenBy(tokens.alice)).ids).toEqual(newest([...alices, carols[0]!]));
    await setPublic('bob-private', true);
    expect(await seenBy(dave)).toEqual({ ids: [carols[2]!.id], totalCount: 1 });
    await db.query('DELETE FROM "Collection" WHERE id = $1', [collection('bob-private')]);
    expect(await seenBy(dave)).toEqual({ ids: [], totalCount: 0 });
    expect((await seenBy(carol)).ids).toEqual(newest(carols));
  });

  it("refuses a cursor of another connection, and a cursor made from someone else's operation pages nothing", async () => {
    // An events cursor (a bigint row id) given to operations: a typed argument error, not a
    // database error.
    const eventsCursor = Buffer.from('GPC:I:12').toString('base64');
    const refused = await gql(app.url, ListOperations, { first: 5, after: eventsCursor }, tokens.alice);
    expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(refused.errors?.[0]?.message).toContain('after');
    // A well-formed cursor of bob's newest operation, used by alice: nothing, whatever its time.
    const bobs = ownedBy('bob')[0]!.id;
    const probe = Buffer.from(`GPC:S:${bobs}`).toString('base64');
    expect(ids(await list(tokens.alice, { first: 5, after: probe }))).toEqual([]);
    // The same cursor is bob's to use.
    expect(ids(await list(tokens.bob, { first: 2, after: probe }))).toEqual(
      ownedBy('bob')
        .slice(1, 3)
        .map((row) => row.id),
    );
  });
});

const ListOperationsCounted = graphql(`
  query ListOperationsCounted($filter: OperationFilter, $first: Int) {
    operations(filter: $filter, first: $first) {
      totalCount
      edges { node { id } }
    }
  }
`);
