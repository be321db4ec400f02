import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import type { OperationsUpdatedSubscription } from '../gql/graphql.ts';
import { graphql } from '../gql/index.ts';
import { type ServerProcess, spawnServer, startTestApp, uniquePrefix } from '../support/app.ts';
import { settleBatch, startBatchOk } from '../support/batches.ts';
import { type Collected, gql, subscribeSse, subscribeWs, tokenFor } from '../support/client.ts';
import { createCollection, startOk } from '../support/collections.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { CancelOperation } from '../support/documents.ts';
import { startOperation, uuidOf, waitForTerminal } from '../support/operations.ts';
import { REDIS_URL } from '../support/services.ts';

/**
 * operationsUpdated (issue 11, point 4): a user's live list gets every change of their own
 * operations and nothing of anyone else's; a cursor resumes it with nothing missed and nothing
 * repeated, across server processes and across transactions that commit out of order.
 */

const OperationsUpdated = graphql(`
  subscription OperationsUpdated($filter: OperationFilter, $after: String) {
    operationsUpdated(filter: $filter, after: $after) {
      cursor
      operation { id type status sequence owner { name } collection { id } batch { id } }
    }
  }
`);

type Change = OperationsUpdatedSubscription['operationsUpdated'];
type Stream = Collected<OperationsUpdatedSubscription>;
type Variables = { filter?: Record<string, unknown> | null; after?: string | null };

let db: TestDatabase;
let app: App & { url: string };
/** A second server process on the same database and Redis channels. */
let other: ServerProcess;
const tokens = {} as Record<'alice' | 'bob' | 'root', string>;

beforeAll(async () => {
  db = await createTestDatabase();
  const prefix = uniquePrefix();
  app = await startTestApp(db.url, { channelPrefix: prefix });
  other = await spawnServer({ DATABASE_URL: db.url, REDIS_URL, OPSGRAPH_CHANNEL_PREFIX: prefix });
  tokens.alice = await tokenFor(db.url, 'alice');
  tokens.bob = await tokenFor(db.url, 'bob');
  tokens.root = await tokenFor(db.url, 'root', true);
});
afterAll(async () => {
  await other?.stop();
  await app?.close();
  await db?.drop();
});

const TRANSPORTS = { ws: subscribeWs, sse: subscribeSse } as const;
type Transport = keyof typeof TRANSPORTS;

const live = (transport: Transport, token: string, variables: Variables = {}, url = app.url): Stream =>
  TRANSPORTS[transport](url, OperationsUpdated, variables, token);
const changes = (stream: Stream): Change[] => stream.messages.map((message) => message.operationsUpdated);
const changeOf = (stream: Stream, id: string, status?: string) =>
  stream.waitUntil(
    (m) =>
      m.operationsUpdated.operation.id === id && (!status || m.operationsUpdated.operation.status === status),
    30_000,
  );
/** Sequences delivered per operation id. */
const sequences = (list: Change[]) => {
  const byId = new Map<string, number[]>();
  for (const change of list)
    byId.set(change.operation.id, [...(byId.get(change.operation.id) ?? []), change.operation.sequence]);
  return byId;
};
const eventSequences = async (id: string) =>
  (
    await db.query<{ sequence: number }>(
      'SELECT sequence FROM "OperationEvent" WHERE "operationId" = $1 ORDER BY sequence',
      [uuidOf(id)],
    )
  ).map((row) => row.sequence);
const codes = (errors: unknown[]) =>
  (errors.flat() as { extensions?: { code?: string } }[]).map((error) => error.extensions?.code);

/**
 * Proves the stream live: a stream delivers changes committed after its snapshot, which it takes
 * once subscribed, so an echo started meanwhile may never show. Echoes are started one after
 * another until one arrives on the stream; returns its id.
 */
async function warmUp(stream: Stream, token: string, url = app.url) {
  for (let attempt = 1; ; attempt += 1) {
    const warm = await startOk(url, token, 'diagnostics.echo', { value: 'warm' });
    try {
      await stream.waitUntil(
        (m) =>
          m.operationsUpdated.operation.id === warm.id &&
          m.operationsUpdated.operation.status === 'COMPLETED',
        attempt === 10 ? 30_000 : 2000,
      );
      return warm.id;
    } catch (error) {
      if (attempt === 10) throw error;
    }
  }
}

describe.each(['ws', 'sse'] as const)('operationsUpdated over %s', (transport) => {
  it("delivers every change of the viewer's operations, from both processes, and nothing of another user's", async () => {
    const alice = live(transport, tokens.alice);
    const bob = live(transport, tokens.bob);
    try {
      await warmUp(alice, tokens.alice);
      await warmUp(bob, tokens.bob);
      const done = await startOperation(app.url, tokens.alice, 'diagnostics.sleep', { steps: 3, stepMs: 60 });
      const cancelled = await startOperation(other.url, tokens.alice, 'diagnostics.sleep', {
        steps: 200,
        stepMs: 50,
      });
      await changeOf(alice, cancelled.id, 'PROCESSING');
      const cancel = await gql(other.url, CancelOperation, { id: cancelled.id }, tokens.alice);
      expect(cancel.data?.cancelOperation?.__typename).toBe('CancelOperationSuccess');
      await changeOf(alice, done.id, 'COMPLETED');
      await changeOf(alice, cancelled.id, 'CANCELLED');
      // bob's own later change, awaited: anything of alice's would have reached him before it.
      const bobs = await startOk(app.url, tokens.bob, 'diagnostics.echo', { value: 'bob' });
      await changeOf(bob, bobs.id, 'COMPLETED');

      const delivered = sequences(changes(alice));
      for (const id of [done.id, cancelled.id]) {
        // start, progress, completion or cancel: every event of the operation, in order, once.
        expect(delivered.get(id), id).toEqual(await eventSequences(id));
      }
      const doneStatuses = changes(alice)
        .filter((change) => change.operation.id === done.id)
        .map((change) => change.operation.status);
      expect(doneStatuses).toEqual(expect.arrayContaining(['PENDING', 'PROCESSING', 'COMPLETED']));
      expect(new Set(changes(alice).map((change) => change.operation.owner.name))).toEqual(
        new Set(['alice']),
      );
      expect(new Set(changes(bob).map((change) => change.operation.owner.name))).toEqual(new Set(['bob']));
    } finally {
      alice.close();
      bob.close();
    }
  });

  it('resumes with the last cursor: every change made meanwhile (on another process too) arrives, none twice', async () => {
    const first = live(transport, tokens.alice);
    const before = { id: await warmUp(first, tokens.alice) };
    await changeOf(first, before.id, 'COMPLETED');
    const running = await startOperation(app.url, tokens.alice, 'diagnostics.sleep', {
      steps: 200,
      stepMs: 50,
    });
    await changeOf(first, running.id, 'PROCESSING');
    const cursor = changes(first).at(-1)!.cursor;
    const deliveredBefore = changes(first).map(
      (change) => `${change.operation.id}@${change.operation.sequence}`,
    );
    first.close();

    // While disconnected: changes from this process and from the other one, a cancel among them.
    const here = await startOperation(app.url, tokens.alice, 'diagnostics.sleep', { steps: 2, stepMs: 20 });
    const there = await startOperation(other.url, tokens.alice, 'diagnostics.echo', { value: 'there' });
    await gql(other.url, CancelOperation, { id: running.id }, tokens.alice);
    for (const id of [here.id, there.id, running.id]) await waitForTerminal(db, uuidOf(id), 30_000);
    const bobs = await startOk(app.url, tokens.bob, 'diagnostics.echo', { value: 'bob, meanwhile' });
    await waitForTerminal(db, uuidOf(bobs.id), 30_000);

    // Resume on the other process.
    const resumed = live(transport, tokens.alice, { after: cursor }, other.url);
    try {
      for (const id of [here.id, there.id]) await changeOf(resumed, id, 'COMPLETED');
      await changeOf(resumed, running.id, 'CANCELLED');
      // A change after the resume arrives live, after the replay; nothing else is in between.
      const after = await startOk(other.url, tokens.alice, 'diagnostics.echo', { value: 'after' });
      await changeOf(resumed, after.id, 'COMPLETED');
      const got = changes(resumed);
      const keys = got.map((change) => `${change.operation.id}@${change.operation.sequence}`);
      expect(new Set(keys).size).toBe(keys.length);
      expect(keys.filter((key) => deliveredBefore.includes(key))).toEqual([]);
      expect(new Set(got.map((change) => change.operation.id))).toEqual(
        new Set([here.id, there.id, running.id, after.id]),
      );
      // Each changed operation arrives in its latest state (a replay coalesces intermediate ones).
      for (const id of [here.id, there.id, running.id]) {
        expect(sequences(got).get(id), id).toEqual([(await eventSequences(id)).at(-1)]);
      }
    } finally {
      resumed.close();
    }
  });
});

describe('operationsUpdated', () => {
  it('replays a change whose transaction began before the cursor and committed after it', async () => {
    const first = live('ws', tokens.alice);
    const target = { id: await warmUp(first, tokens.alice) };
    await changeOf(first, target.id, 'COMPLETED');
    // A transaction that writes an event for `target` and stays open: a lower transaction id than
    // every change below, committed after all of them were delivered.
    const slow = new pg.Client({ connectionString: db.url });
    await slow.connect();
    try {
      await slow.query('BEGIN');
      const [row] = (
        await slow.query<{ sequence: number }>(
          `UPDATE "Operation" SET sequence = sequence + 1, "progressMessage" = 'late' WHERE id = $1 RETURNING sequence`,
          [uuidOf(target.id)],
        )
      ).rows;
      await slow.query(
        `INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent", message)
         VALUES ($1, $2, 'PROGRESS', 'COMPLETED', 0, 'late')`,
        [uuidOf(target.id), row!.sequence],
      );
      // Changes of more than 16 operations: the stream reconciles meanwhile, so its cursor's
      // snapshot holds the open transaction as in progress (a serial cursor would skip it for good).
      const echoes = [];
      for (let i = 0; i < 17; i += 1)
        echoes.push(await startOk(app.url, tokens.alice, 'diagnostics.echo', { value: i }));
      for (const echo of echoes) await changeOf(first, echo.id, 'COMPLETED');
      // (The cursor is opaque to clients; the test peeks at it.)
      const { xid } = (await slow.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid'))
        .rows[0]!;
      const inProgress = (cursor: string): string[] =>
        JSON.parse(Buffer.from(cursor.split('.')[0]!, 'base64url').toString())
          .b.split(':')[2]!
          .split(',');
      // Live messages already queued are delivered before the stream reconciles: when the 17 came
      // in one burst, the reconciliation follows the last of them. One more change at a time until
      // a cursor carries the reconciled snapshot.
      for (let i = 0; i < 20 && !inProgress(changes(first).at(-1)!.cursor).includes(xid); i += 1) {
        const more = await startOk(app.url, tokens.alice, 'diagnostics.echo', { value: 100 + i });
        await changeOf(first, more.id, 'COMPLETED');
      }
      const cursor = changes(first).at(-1)!.cursor;
      expect(inProgress(cursor)).toContain(xid);
      first.close();
      await slow.query('COMMIT');

      const resumed = live('sse', tokens.alice, { after: cursor });
      try {
        const late = await resumed.waitUntil((m) => m.operationsUpdated.operation.id === target.id, 30_000);
        expect(late.operationsUpdated.operation.sequence).toBe(row!.sequence);
        const marker = await startOk(app.url, tokens.alice, 'diagnostics.echo', { value: 'marker' });
        await changeOf(resumed, marker.id, 'COMPLETED');
        // Only the late change and what came after the resume: nothing delivered before repeats.
        expect(new Set(changes(resumed).map((change) => change.operation.id))).toEqual(
          new Set([target.id, marker.id]),
        );
      } finally {
        resumed.close();
      }
    } finally {
      await slow.end();
    }
  });

  it('filters by status, type, batch and collection; a public collection shows others its operations', async () => {
    const all = live('ws', tokens.alice);
    const echoes = live('ws', tokens.alice, { filter: { type: 'diagnostics.echo' } });
    const failed = live('sse', tokens.alice, { filter: { status: ['FAILED'] } });
    try {
      await warmUp(all, tokens.alice);
      await warmUp(echoes, tokens.alice);
      const cursor = changes(all).at(-1)!.cursor;
      const sleep = await startOperation(app.url, tokens.alice, 'diagnostics.sleep', {
        steps: 1,
        stepMs: 10,
      });
      await changeOf(all, sleep.id, 'COMPLETED');
      const failing = await startOk(app.url, tokens.alice, 'diagnostics.echo', { failWith: 'as asked' });
      await changeOf(failed, failing.id, 'FAILED');
      await changeOf(echoes, failing.id, 'FAILED');
      expect(changes(echoes).every((change) => change.operation.type === 'diagnostics.echo')).toBe(true);
      expect(changes(failed).map((change) => [change.operation.id, change.operation.status])).toEqual([
        [failing.id, 'FAILED'],
      ]);

      // A batch's items, replayed from a cursor taken before the batch started: the items only.
      const batch = await startBatchOk(app.url, tokens.alice, {
        items: [
          { id: 'one', type: 'diagnostics.echo', input: { value: 1 } },
          { id: 'two', type: 'diagnostics.echo', input: { value: 2 }, dependsOn: ['one'] },
        ],
      });
      await settleBatch(app.url, tokens.alice, batch.id);
      const items = live('sse', tokens.alice, { filter: { batchId: batch.id }, after: cursor });
      try {
        await items.waitFor(2, 30_000);
        const marker = await startOk(app.url, tokens.alice, 'diagnostics.echo', { value: 'marker' });
        await changeOf(all, marker.id, 'COMPLETED');
        const [outcome] = await db.query<{ count: number }>(
          'SELECT count(*)::int AS count FROM "Operation" WHERE "batchId" = $1',
          [uuidOf(batch.id)],
        );
        expect(changes(items)).toHaveLength(outcome!.count);
        for (const change of changes(items))
          expect(change.operation).toMatchObject({ status: 'COMPLETED', batch: { id: batch.id } });
      } finally {
        items.close();
      }

      // bob follows alice's public collection and sees her operation on it; not her others.
      const collection = await createCollection(app.url, tokens.alice, {
        name: 'live-public',
        isPublic: true,
      });
      const bobs = live('sse', tokens.bob, { filter: { collectionId: collection } });
      try {
        const appendInput = {
          collectionId: collection,
          source: { kind: 'inline', name: 'n', documents: [{ externalId: 'n-1', content: 'heron' }] },
        };
        // Proven live by a first append, then a second one must arrive in full.
        const warm = await startOk(app.url, tokens.alice, 'collection.append', appendInput);
        await changeOf(bobs, warm.id, 'COMPLETED');
        const elsewhere = await startOk(app.url, tokens.alice, 'diagnostics.echo', { value: 'not on it' });
        await changeOf(all, elsewhere.id, 'COMPLETED');
        const append = await startOk(app.url, tokens.alice, 'collection.append', {
          ...appendInput,
          source: { ...appendInput.source, documents: [{ externalId: 'n-2', content: 'egret' }] },
        });
        await changeOf(bobs, append.id, 'COMPLETED');
        expect(new Set(changes(bobs).map((change) => change.operation.collection?.id))).toEqual(
          new Set([collection]),
        );
        expect(sequences(changes(bobs)).get(append.id)).toEqual(await eventSequences(append.id));
      } finally {
        bobs.close();
      }
    } finally {
      for (const stream of [all, echoes, failed]) stream.close();
    }
  });

  it('refuses a malformed or altered cursor with BAD_USER_INPUT, and one replaying too much with RESYNC_REQUIRED', async () => {
    const first = live('ws', tokens.alice);
    await warmUp(first, tokens.alice);
    const cursor = changes(first).at(-1)!.cursor;
    first.close();
    const [body, mac] = cursor.split('.') as [string, string];
    const altered = JSON.parse(Buffer.from(body, 'base64url').toString());
    altered.b = '1:1:'; // from the beginning of time
    for (const after of [
      'nonsense',
      `${Buffer.from(JSON.stringify(altered)).toString('base64url')}.${mac}`,
      `${body}.${mac.slice(0, -2)}AA`,
      'x'.repeat(20_000),
    ]) {
      const refused = live('ws', tokens.alice, { after });
      await refused.done;
      expect(refused.messages).toEqual([]);
      expect(codes(refused.errors), after.slice(0, 40)).toEqual(['BAD_USER_INPUT']);
    }
    // An instance that replays at most 1 operation: two changed since the cursor.
    const small = await startTestApp(db.url, { channelPrefix: uniquePrefix(), liveListMaxReplay: 1 });
    try {
      for (const value of [1, 2]) {
        const echo = await startOk(app.url, tokens.alice, 'diagnostics.echo', { value });
        await waitForTerminal(db, uuidOf(echo.id), 30_000);
      }
      const resync = live('ws', tokens.alice, { after: cursor }, small.url);
      await resync.done;
      expect(resync.messages).toEqual([]);
      expect(codes(resync.errors)).toEqual(['RESYNC_REQUIRED']);
    } finally {
      await small.close();
    }
  });

  it("shows an admin everyone's operations", async () => {
    const root = live('ws', tokens.root);
    try {
      await warmUp(root, tokens.root);
      const alices = await startOk(other.url, tokens.alice, 'diagnostics.echo', { value: 'for root' });
      await changeOf(root, alices.id, 'COMPLETED');
    } finally {
      root.close();
    }
  });
});
