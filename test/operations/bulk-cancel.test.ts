import { describe, expect, it } from 'vitest';
import { graphql } from '../gql/index.ts';
import { startBatchOk } from '../support/batches.ts';
import { gql } from '../support/client.ts';
import { createCollection } from '../support/collections.ts';
import { StartOperation } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { eventsOf, operationRow, uuidOf, waitForRow } from '../support/operations.ts';

/** At most 3 a call, so the bound is reached with a handful of operations. */
const server = useServer({ bulkCancelMax: 3 });

const CancelOperations = graphql(`
  mutation CancelOperations($input: CancelOperationsInput!) {
    cancelOperations(input: $input) {
      __typename
      ... on CancelOperationsSuccess { count hasMore }
      ... on ValidationError { message problems { path message } }
    }
  }
`);

type Filter = {
  status?: ('PENDING' | 'PROCESSING' | 'COMPLETED' | 'FAILED' | 'CANCELLED')[];
  type?: string;
  createdAfter?: string;
  collectionId?: string;
  batchId?: string;
};

async function cancelMany(token: string, filter: Filter, reason?: string) {
  const response = await gql(server.app.url, CancelOperations, { input: { filter, reason } }, token);
  const result = response.data?.cancelOperations;
  if (!result) throw new Error(JSON.stringify(response));
  return result;
}

async function cancelled(token: string, filter: Filter, reason?: string) {
  const result = await cancelMany(token, filter, reason);
  if (result.__typename !== 'CancelOperationsSuccess') throw new Error(JSON.stringify(result));
  return result;
}

/** Starts an operation; `delayed` ones wait an hour (PENDING), the others run (PROCESSING soon). */
async function start(token: string, type: string, input: Record<string, unknown>, delayed = false) {
  const runAt = delayed ? new Date(Date.now() + 3_600_000).toISOString() : undefined;
  const response = await gql(server.app.url, StartOperation, { input: { type, input, runAt } }, token);
  const started = response.data?.startOperation;
  if (started?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
  return uuidOf(started.operation.id);
}

const long = { steps: 600, stepMs: 100 };
const statusOf = async (uuid: string) => (await operationRow(server.db, uuid)).status;
const now = () => new Date(Date.now() - 1).toISOString();

/** The cancel's trail: last event CANCELLED, its reservation refunded, an audit row by `actor`. */
async function expectNormalCancel(uuid: string, actor: string, reason: string) {
  const row = await operationRow(server.db, uuid);
  expect(row.status).toBe('CANCELLED');
  expect(row.error).toEqual({ code: 'CANCELLED', message: reason });
  expect((await eventsOf(server.db, uuid)).at(-1)).toMatchObject({ kind: 'CANCELLED', status: 'CANCELLED' });
  const refunds = await server.db.query(
    `SELECT 1 FROM "CreditLedger" WHERE "operationId" = $1 AND kind = 'REFUND'`,
    [uuid],
  );
  expect(refunds).toHaveLength(1);
  const audit = await server.db.query<{ name: string }>(
    `SELECT u.name FROM "AuditEvent" a JOIN "User" u ON u.id = a."actorId"
      WHERE a."operationId" = $1 AND a.action = 'OPERATION_CANCELLED'`,
    [uuid],
  );
  expect(audit).toEqual([{ name: actor }]);
}

describe('cancelOperations', () => {
  it("cancels exactly the viewer's matching unfinished operations, each as a normal cancel", async () => {
    const { alice, bob, root } = server.tokens;
    const t0 = now();
    const running = await start(alice, 'diagnostics.sleep', long);
    const waiting = await start(alice, 'diagnostics.sleep', long, true);
    const flaky = await start(alice, 'diagnostics.flaky', long);
    const done = await start(alice, 'diagnostics.sleep', { steps: 1, stepMs: 1 });
    const bobs = await start(bob, 'diagnostics.sleep', long);
    await waitForRow(server.db, running, (row) => row.status === 'PROCESSING', 15_000, 'PROCESSING');
    await waitForRow(server.db, done, (row) => row.status === 'COMPLETED', 15_000, 'COMPLETED');
    const doneEvents = await eventsOf(server.db, done);

    expect(await cancelled(alice, { type: 'diagnostics.sleep', createdAfter: t0 }, 'tidy up')).toEqual({
      __typename: 'CancelOperationsSuccess',
      count: 2,
      hasMore: false,
    });
    await expectNormalCancel(running, 'alice', 'tidy up');
    await expectNormalCancel(waiting, 'alice', 'tidy up');
    expect(['PENDING', 'PROCESSING']).toContain(await statusOf(flaky));
    expect(['PENDING', 'PROCESSING']).toContain(await statusOf(bobs));
    expect(await statusOf(done)).toBe('COMPLETED');
    expect(await eventsOf(server.db, done)).toEqual(doneEvents);

    // By status: only the unfinished ones can be cancelled; COMPLETED in the filter changes nothing.
    expect(
      await cancelled(alice, { status: ['PENDING', 'PROCESSING', 'COMPLETED'], createdAfter: t0 }, 'all'),
    ).toMatchObject({ count: 1, hasMore: false });
    await expectNormalCancel(flaky, 'alice', 'all');
    expect(['PENDING', 'PROCESSING']).toContain(await statusOf(bobs));

    // An admin cancels someone else's.
    expect(await cancelled(root, { createdAfter: t0 }, 'maintenance')).toMatchObject({ count: 1 });
    await expectNormalCancel(bobs, 'root', 'maintenance');
    expect(await cancelled(root, { createdAfter: t0 })).toMatchObject({ count: 0, hasMore: false });
  });

  it('leaves an operation seen only through a public collection; its owner may cancel it', async () => {
    const { alice, bob } = server.tokens;
    const collectionId = await createCollection(server.app.url, bob, { name: 'shared', isPublic: true });
    const removal = await start(bob, 'collection.removeSource', { collectionId, source: 'x' }, true);
    const mine = await start(alice, 'diagnostics.sleep', long, true);

    expect(await cancelled(alice, { collectionId })).toMatchObject({ count: 0, hasMore: false });
    expect(await statusOf(removal)).toBe('PENDING');
    expect(await statusOf(mine)).toBe('PENDING');

    expect(await cancelled(bob, { collectionId }, 'not needed')).toMatchObject({ count: 1 });
    await expectNormalCancel(removal, 'bob', 'not needed');
    expect(await statusOf(mine)).toBe('PENDING');
    await cancelled(alice, { type: 'diagnostics.sleep', status: ['PENDING'] });
  });

  it('cancels the items of a batch by batchId, and a batch by type', async () => {
    const { alice } = server.tokens;
    const items = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: `s${i}`, type: 'diagnostics.sleep', input: long }));
    const first = await startBatchOk(server.app.url, alice, { atomic: false, items: items(2) });
    const second = await startBatchOk(server.app.url, alice, { atomic: false, items: items(2) });
    const itemsOf = (batch: string) =>
      server.db.query<{ id: string; status: string }>(
        `SELECT id, status::text AS status FROM "Operation" WHERE "batchId" = $1 ORDER BY "batchItemId"`,
        [uuidOf(batch)],
      );

    expect(await cancelled(alice, { batchId: first.id }, 'items only')).toMatchObject({ count: 2 });
    for (const item of await itemsOf(first.id)) await expectNormalCancel(item.id, 'alice', 'items only');
    expect((await itemsOf(second.id)).map((item) => item.status)).not.toContain('CANCELLED');

    // The second batch as a whole (the first has ended or is ending; counted only if still unfinished).
    await waitForRow(
      server.db,
      uuidOf(first.id),
      (row) => row.status !== 'PENDING' && row.status !== 'PROCESSING',
      15_000,
      'ended',
    );
    expect(await cancelled(alice, { type: 'batch' }, 'whole batch')).toMatchObject({ count: 1 });
    const batch = await waitForRow(
      server.db,
      uuidOf(second.id),
      (row) => row.status === 'CANCELLED',
      15_000,
      'CANCELLED',
    );
    expect(batch.status).toBe('CANCELLED');
    for (const item of await itemsOf(second.id)) expect(item.status).toBe('CANCELLED');
    const audit = await server.db.query(
      `SELECT 1 FROM "AuditEvent" WHERE "operationId" = $1 AND action = 'BATCH_CANCELLED'`,
      [uuidOf(second.id)],
    );
    expect(audit).toHaveLength(1);
  });

  it('stops at OPSGRAPH_BULK_CANCEL_MAX and says more are left', async () => {
    const { alice } = server.tokens;
    const t0 = now();
    const ids = [];
    for (let i = 0; i < 4; i += 1) ids.push(await start(alice, 'diagnostics.sleep', long, true));
    expect(await cancelled(alice, { createdAfter: t0 })).toMatchObject({ count: 3, hasMore: true });
    // Oldest first.
    expect(await Promise.all(ids.map(statusOf))).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED', 'PENDING']);
    expect(await cancelled(alice, { createdAfter: t0 })).toMatchObject({ count: 1, hasMore: false });
    expect(await statusOf(ids[3]!)).toBe('CANCELLED');
  });

  it('answers a malformed filter or reason with a ValidationError and cancels nothing', async () => {
    const { alice, bob } = server.tokens;
    const mine = await start(alice, 'diagnostics.sleep', long, true);
    const collectionId = await createCollection(server.app.url, alice, { name: 'mine' });
    for (const [filter, path] of [
      [{ collectionId: 'nope' }, ['filter', 'collectionId']],
      [{ batchId: collectionId }, ['filter', 'batchId']],
    ] as const) {
      const result = await cancelMany(alice, filter);
      expect(result.__typename).toBe('ValidationError');
      if (result.__typename === 'ValidationError') expect(result.problems[0]?.path.slice(-2)).toEqual(path);
    }
    const tooLong = await cancelMany(alice, {}, 'x'.repeat(1001));
    expect(tooLong).toMatchObject({
      __typename: 'ValidationError',
      problems: [{ path: ['input', 'reason'] }],
    });
    expect(await statusOf(mine)).toBe('PENDING');

    // An empty filter: everything of the viewer's, nobody else's.
    const bobs = await start(bob, 'diagnostics.sleep', long, true);
    expect(await cancelled(alice, {})).toMatchObject({ count: 1, hasMore: false });
    expect(await statusOf(mine)).toBe('CANCELLED');
    expect(await statusOf(bobs)).toBe('PENDING');
  });
});
