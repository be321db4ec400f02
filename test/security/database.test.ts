import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { BUILT_IN_TYPES, withBatches } from '../../src/app.ts';
import { defineOperationType } from '../../src/operations/registry.ts';
import type { Resources } from '../../src/resources.ts';
import { graphql } from '../gql/index.ts';
import { startTestApp } from '../support/app.ts';
import { gql, tokenFor } from '../support/client.ts';
import { collectionFolders, createCollection, settle, startOk, writeFiles } from '../support/collections.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { uuidOf } from '../support/operations.ts';
import { capturingLogger } from './captured-logs.ts';

// Database protection (issue 9, point 6): the API and the workers have separate pools, API
// statements run under a statement timeout that reaches clients as STATEMENT_TIMEOUT, and a search
// is bounded in words, phrases and time.

const API_TIMEOUT_MS = 2500;
const SEARCH_TIMEOUT_MS = 400;

/** A worker-side type that holds one worker connection in `pg_sleep` for `ms`. */
const hold = defineOperationType({
  name: 'test.hold',
  description: 'Holds a worker connection for ms.',
  input: z.strictObject({ ms: z.int().min(0).max(30_000) }),
  async run({ ms }, ctx) {
    await ctx.db.$executeRawUnsafe('SELECT pg_sleep($1::float8 / 1000)', ms);
    return { held: ms };
  },
});

const folders = collectionFolders();
const logs = capturingLogger();
let db: TestDatabase;
let url: string;
let close: () => Promise<void>;
let alice: string;
let bob: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const late: { resources?: Resources } = {};
  const app = await startTestApp(
    db.url,
    {
      apiPoolSize: 2,
      workerPoolSize: 2,
      // One statement at a time per request: one request can hold at most one of the two.
      apiStatementsPerRequest: 1,
      apiStatementTimeoutMs: API_TIMEOUT_MS,
      searchTimeoutMs: SEARCH_TIMEOUT_MS,
      sourcesRoot: folders.sourcesRoot,
      storageDir: folders.storageDir,
      // A 1,000-item batch and more from one user in one test: quotas are not what is tested here.
      quotaMaxActive: 100_000,
    },
    { logger: logs.logger, types: withBatches([...BUILT_IN_TYPES, hold], () => late.resources as Resources) },
  );
  late.resources = app.resources;
  url = app.url;
  close = app.close;
  alice = await tokenFor(db.url, 'alice');
  bob = await tokenFor(db.url, 'bob');
});
afterAll(async () => {
  await close?.();
  await db?.drop();
});

const Collections = graphql(`
  query DbCollections {
    collections(first: 5) { edges { node { id name } } }
  }
`);
const ViewerName = graphql(`
  query DbViewer {
    viewer { name }
  }
`);
const HostileSearch = graphql(`
  query HostileSearch($collectionId: ID!, $query: String!, $first: Int) {
    search(collectionId: $collectionId, query: $query, first: $first) {
      __typename
      ... on SearchSuccess { hits { score } }
      ... on SearchTooComplexError { message measure limit measured }
      ... on SearchTimeoutError { message timeoutMs }
      ... on ValidationError { problems { path message } }
    }
  }
`);

/** Statements of this database now waiting on a lock / running pg_sleep, from pg_stat_activity. */
async function activity() {
  const [row] = await db.query<{ locked: number; sleeping: number }>(
    `SELECT count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS locked,
            count(*) FILTER (WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active')::int AS sleeping
       FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
  );
  return row!;
}

/** Holds an ACCESS EXCLUSIVE lock on `table` (even plain reads wait) until released. */
async function lockTable(databaseUrl: string, table: string) {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query('BEGIN');
  await client.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
  return {
    async release() {
      await client.query('ROLLBACK');
      await client.end();
    },
  };
}

const timed = async <T>(action: () => Promise<T>) => {
  const started = performance.now();
  const value = await action();
  return { value, ms: performance.now() - started };
};

const ManyCollections = graphql(`
  query DbManyCollections {
    a: collections(first: 5) { edges { node { id } } }
    b: collections(first: 5) { edges { node { id } } }
    c: collections(first: 5) { edges { node { id } } }
    d: collections(first: 5) { edges { node { id } } }
    e: collections(first: 5) { edges { node { id } } }
    f: collections(first: 5) { edges { node { id } } }
  }
`);
const OneOperation = graphql(`
  query DbOneOperation {
    operations(first: 1) { edges { node { id } } }
  }
`);

describe('statements per request', () => {
  it("lets one request with many aliases hold at most OPSGRAPH_API_STATEMENTS_PER_REQUEST connections, so another user's request still finds one", async () => {
    const locker = await lockTable(db.url, 'Collection');
    let many: Promise<unknown> | undefined;
    try {
      // Six lists in one request, each waiting on the lock: without the limit they would take both
      // API connections and every other request would wait for the statement timeout.
      many = gql(url, ManyCollections, {}, alice);
      await vi.waitFor(async () => expect((await activity()).locked).toBe(1), { interval: 20 });
      // An admin's list reads only "Operation" (a user's visibility rule joins "Collection").
      const admin = await tokenFor(db.url, 'root', true);
      const other = await timed(() => gql(url, OneOperation, {}, admin));
      expect(other.value.errors).toBeUndefined();
      expect(other.ms).toBeLessThan(API_TIMEOUT_MS / 2);
      expect((await activity()).locked).toBe(1);
    } finally {
      await locker.release();
    }
    const answered = (await many) as Awaited<ReturnType<typeof gql>>;
    expect(answered.errors).toBeUndefined();
    expect(Object.keys(answered.data as object)).toHaveLength(6);
  });
});

describe('separate pools', () => {
  it('runs an operation to completion on the worker pool while every API connection is busy, and the busy API requests end with STATEMENT_TIMEOUT', async () => {
    const operation = await startOk(url, alice, 'diagnostics.echo', { value: 'worker side', sleepMs: 300 });
    // A lock held outside opsgraph makes every API read of "Collection" wait: two requests take
    // both API connections until the statement timeout stops them.
    const locker = await lockTable(db.url, 'Collection');
    try {
      const busy = [gql(url, Collections, {}, bob), gql(url, Collections, {}, alice)];
      let settled = 0;
      for (const request of busy) void request.then(() => (settled += 1));
      await vi.waitFor(async () => expect((await activity()).locked).toBe(2), { interval: 20 });

      const done = await vi.waitFor(
        async () => {
          const [row] = await db.query<{ status: string }>(`SELECT status FROM "Operation" WHERE id = $1`, [
            uuidOf(operation.id),
          ]);
          expect(row?.status).toBe('COMPLETED');
          return row;
        },
        { timeout: API_TIMEOUT_MS, interval: 20 },
      );
      expect(done?.status).toBe('COMPLETED');
      expect(settled).toBe(0); // the API pool was still exhausted when the worker finished

      const responses = await Promise.all(busy);
      for (const response of responses) {
        expect(response.errors?.[0]?.extensions).toMatchObject({
          code: 'STATEMENT_TIMEOUT',
          timeoutMs: API_TIMEOUT_MS,
        });
        const text = JSON.stringify(response);
        expect(text).not.toMatch(/SELECT|prisma|57014|Raw query/i);
      }
    } finally {
      await locker.release();
    }
    expect(logs.errors()).toEqual([]);
    expect((await gql(url, ViewerName, {}, alice)).data?.viewer?.name).toBe('alice');
  });

  it('answers API requests at once while every worker connection is busy', async () => {
    const held = [
      await startOk(url, alice, 'test.hold', { ms: 4000 }),
      await startOk(url, alice, 'test.hold', { ms: 4000 }),
    ];
    await vi.waitFor(async () => expect((await activity()).sleeping).toBe(2), {
      timeout: 10_000,
      interval: 20,
    });
    const { value, ms } = await timed(() => gql(url, Collections, {}, bob));
    expect(value.errors).toBeUndefined();
    expect((await gql(url, ViewerName, {}, bob)).data?.viewer?.name).toBe('bob');
    console.log(`API request with the worker pool exhausted: ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(500);
    expect((await activity()).sleeping).toBe(2); // both worker connections still held
    for (const operation of held)
      expect(await settle(url, alice, operation.id)).toMatchObject({ status: 'COMPLETED', error: null });
  });
});

describe('search', () => {
  const TEXT = 'alpha beta gamma delta epsilon zeta eta theta iota kappa ';
  let collectionId: string;
  beforeAll(async () => {
    // 300 files of ~2,000 characters in chunks of ~200: a public collection of ~3,000 chunks.
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i += 1) files[`big/doc-${i}.txt`] = TEXT.repeat(36);
    writeFiles(folders.sourcesRoot, files);
    collectionId = await createCollection(url, alice, { name: 'public-big', isPublic: true, chunkSize: 200 });
    const indexed = await startOk(url, alice, 'collection.append', {
      collectionId,
      source: { kind: 'folder', path: 'big' },
    });
    expect((await settle(url, alice, indexed.id, 60_000)).status).toBe('COMPLETED');
    const [row] = await db.query<{ chunks: number }>(`SELECT count(*)::int AS chunks FROM "Chunk"`);
    expect(row!.chunks).toBeGreaterThan(2500);
  }, 90_000);

  it('refuses repeated quoted phrases before they reach the database', async () => {
    const query = '"alpha beta gamma delta" '.repeat(40);
    const { value, ms } = await timed(() =>
      gql(url, HostileSearch, { collectionId, query, first: 100 }, bob),
    );
    expect(value.data?.search).toMatchObject({
      __typename: 'SearchTooComplexError',
      measure: 'phrases',
      limit: 4,
      measured: 40,
    });
    console.log(`40 repeated phrases refused in ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(200);
  });

  it('refuses too many words, and a query over the length limit', async () => {
    const words = await gql(url, HostileSearch, { collectionId, query: 'alpha '.repeat(33) }, bob);
    expect(words.data?.search).toMatchObject({
      __typename: 'SearchTooComplexError',
      measure: 'terms',
      limit: 32,
      measured: 33,
    });
    const long = await gql(url, HostileSearch, { collectionId, query: 'a'.repeat(1001) }, bob);
    expect(long.data?.search).toMatchObject({
      __typename: 'ValidationError',
      problems: [{ path: ['query'], message: 'must be 1 to 1000 characters' }],
    });
  });

  it('stops the costliest allowed search at its timeout with SearchTimeoutError while others are answered', async () => {
    // 4 phrases of 8 repeated words: within the limits, but ts_headline over 100 hits is slow.
    const query = '"alpha beta gamma delta epsilon zeta eta theta" '.repeat(4).trim();
    const running = await startOk(url, alice, 'diagnostics.echo', { value: 1, sleepMs: 200 });
    await gql(url, ViewerName, {}, alice); // warm: a pooled connection and the viewer cache
    let settledHostile = false;
    const hostile = timed(() => gql(url, HostileSearch, { collectionId, query, first: 100 }, bob)).finally(
      () => {
        settledHostile = true;
      },
    );
    // Another user's trivial queries, one after another, for as long as the search runs.
    const latencies: number[] = [];
    while (!settledHostile) {
      const trivial = await timed(() => gql(url, ViewerName, {}, alice));
      expect(trivial.value.data?.viewer?.name).toBe('alice');
      latencies.push(trivial.ms);
    }
    latencies.sort((a, b) => a - b);
    const median = latencies[Math.floor(latencies.length / 2)]!;
    console.log(
      `trivial queries during the search: ${latencies.length}, median ${median.toFixed(0)} ms, max ${latencies.at(-1)!.toFixed(0)} ms`,
    );
    expect(median).toBeLessThan(200);
    const { value, ms } = await hostile;
    console.log(`costliest allowed search: ${value.data?.search.__typename} after ${ms.toFixed(0)} ms`);
    expect(value.data?.search).toMatchObject({
      __typename: 'SearchTimeoutError',
      timeoutMs: SEARCH_TIMEOUT_MS,
    });
    expect(ms).toBeLessThan(SEARCH_TIMEOUT_MS + 1500);
    expect((await settle(url, alice, running.id)).status).toBe('COMPLETED');
    expect(logs.errors()).toEqual([]);
  });

  it('still answers an ordinary search', async () => {
    const { data } = await gql(
      url,
      HostileSearch,
      { collectionId, query: 'gamma "iota kappa"', first: 5 },
      bob,
    );
    expect(data?.search.__typename).toBe('SearchSuccess');
    if (data?.search.__typename === 'SearchSuccess') expect(data.search.hits).toHaveLength(5);
  });
});

describe('requests that are legitimately long fit under the API statement timeout (here half the default)', () => {
  it('creates a batch of 1,000 items and a collection inline', async () => {
    const items = Array.from({ length: 1000 }, (_, i) => ({
      id: `i${i}`,
      type: 'diagnostics.echo',
      // The first fails, so the coordinator skips the rest instead of running 1,000 items.
      input: i === 0 ? { failWith: 'stop here' } : { value: i },
      ...(i > 0 ? { dependsOn: [`i${i - 1}`] } : {}),
    }));
    const StartBig = graphql(`
      mutation DbStartBatch($input: StartBatchInput!) {
        startBatch(input: $input) { __typename ... on StartBatchSuccess { batch { id } } }
      }
    `);
    const { value, ms } = await timed(() => gql(url, StartBig, { input: { items, atomic: false } }, alice));
    console.log(
      `startBatch of 1,000 chained items: ${ms.toFixed(0)} ms (API statement timeout ${API_TIMEOUT_MS} ms)`,
    );
    expect(value.errors).toBeUndefined();
    expect(value.data?.startBatch.__typename).toBe('StartBatchSuccess');
    const created = await timed(() => createCollection(url, alice, { name: 'inline-create' }));
    console.log(`collection.create inline: ${created.ms.toFixed(0)} ms`);
    expect(logs.errors()).toEqual([]);
  });
});
