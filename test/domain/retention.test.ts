import { describe, expect, it, vi } from 'vitest';
import { RETENTION_QUEUE } from '../../src/runs/retention.ts';
import { createCollection } from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';
import { uuidOf } from '../support/operations.ts';
import { ask, READ, RETRY, settle, start } from '../support/runs.ts';

const server = useServer({ retentionDays: 30, retentionBatchSize: 2 });
const url = () => server.app.url;

const DELETE = `mutation($id: ID!) { deleteOperation(input: { id: $id }) { __typename
  ... on DeleteOperationSuccess { deletedId }
  ... on IllegalTransitionError { from to }
  ... on NotFoundError { resource }
  ... on ForbiddenError { action } } }`;

const echo = (value: unknown) => ({ type: 'diagnostics.echo', input: { value } });
const rows = (uuid: string) =>
  server.db.query<{ n: number; events: number }>(
    `SELECT (SELECT count(*)::int FROM "Operation" WHERE id = $1) AS n,
            (SELECT count(*)::int FROM "OperationEvent" WHERE "operationId" = $1) AS events`,
    [uuid],
  );

/** Runs the retention job (as its pg-boss schedule would) and waits until it has finished. */
async function runRetentionJob() {
  const { boss } = server.app.resources;
  const jobId = await boss.send(RETENTION_QUEUE, {});
  if (!jobId) throw new Error('the retention job was not queued');
  await vi.waitFor(
    async () => expect((await boss.getJobById(RETENTION_QUEUE, jobId))?.state).toBe('completed'),
    { timeout: 15_000, interval: 50 },
  );
}

describe('retention', () => {
  it('removes expired terminal operations with their events, in batches, and keeps the rest', async () => {
    const { alice } = server.tokens;
    const expired = [];
    for (let i = 0; i < 5; i += 1) expired.push(await start(url(), alice, echo(i)));
    const recent = await start(url(), alice, echo('recent'));
    for (const id of [...expired, recent]) expect((await settle(url(), alice, id)).status).toBe('COMPLETED');
    // A failed one, expired, that was retried: its retry stays (its retryOf becomes null).
    const failed = await start(url(), alice, { type: 'diagnostics.echo', input: { failWith: 'no' } });
    await settle(url(), alice, failed);
    const retry = (await ask(url(), alice, RETRY, { id: failed, input: { value: 'again' } })).retryOperation
      .operation.id;
    await settle(url(), alice, retry);
    // An unfinished one, however old, is never removed.
    const running = await start(url(), alice, { type: 'diagnostics.echo', input: { sleepMs: 60_000 } });
    // A batch goes with its items (whose own completedAt is recent: items follow their batch).
    const batch = (
      await ask(
        url(),
        alice,
        `mutation($input: StartBatchInput!) { startBatch(input: $input) { ... on StartBatchSuccess { batch { id } } } }`,
        { input: { items: [{ id: 'a', ...echo('item') }] } },
      )
    ).startBatch.batch.id;
    await settle(url(), alice, batch);
    const [item] = await server.db.query<{ id: string }>(`SELECT id FROM "Operation" WHERE "batchId" = $1`, [
      uuidOf(batch),
    ]);
    const old = [...expired, failed, batch].map(uuidOf);
    await server.db.query(
      `UPDATE "Operation" SET "completedAt" = now() - interval '31 days', "createdAt" = now() - interval '31 days' WHERE id = ANY($1::uuid[])`,
      [old],
    );
    await server.db.query(`UPDATE "Operation" SET "createdAt" = now() - interval '90 days' WHERE id = $1`, [
      uuidOf(running),
    ]);
    for (const uuid of old) expect((await rows(uuid))[0]?.events).toBeGreaterThan(0);

    await runRetentionJob();

    // Seven expired operations, two per statement: removed with every event.
    for (const uuid of [...old, item!.id]) expect(await rows(uuid)).toEqual([{ n: 0, events: 0 }]);
    for (const id of [recent, retry, running]) expect((await rows(uuidOf(id)))[0]?.n).toBe(1);
    const kept = (await ask(url(), alice, READ, { id: retry })).operation;
    expect(kept).toMatchObject({ status: 'COMPLETED', retryOf: null });
    await ask(url(), alice, 'mutation($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }', {
      id: running,
    });
  });
});

describe('deleteOperation', () => {
  it('refuses an unfinished operation with IllegalTransitionError and keeps it', async () => {
    const running = await start(url(), server.tokens.alice, {
      type: 'diagnostics.sleep',
      input: { steps: 1, stepMs: 60_000 },
    });
    await settle(url(), server.tokens.alice, running, ['PROCESSING']);
    const data = await ask(url(), server.tokens.alice, DELETE, { id: running });
    expect(data.deleteOperation).toEqual({
      __typename: 'IllegalTransitionError',
      from: 'PROCESSING',
      to: null,
    });
    expect((await rows(uuidOf(running)))[0]?.n).toBe(1);
    await ask(
      url(),
      server.tokens.alice,
      'mutation($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }',
      {
        id: running,
      },
    );
  });

  it('removes a terminal one with its events; others get NotFound or Forbidden, as for cancel; admins may', async () => {
    const { alice, bob, root } = server.tokens;
    const done = await start(url(), alice, echo('bye'));
    await settle(url(), alice, done);
    expect((await ask(url(), bob, DELETE, { id: done })).deleteOperation).toEqual({
      __typename: 'NotFoundError',
      resource: 'Operation',
    });
    // bob may see an operation on alice's public collection, but not delete it.
    const collection = await createCollection(url(), alice, { name: 'public', isPublic: true });
    const onPublic = await start(url(), alice, {
      type: 'collection.append',
      input: {
        collectionId: collection,
        source: { kind: 'inline', name: 'n', documents: [{ externalId: 'x', content: 'hi' }] },
      },
    });
    await settle(url(), alice, onPublic);
    expect((await ask(url(), bob, DELETE, { id: onPublic })).deleteOperation.__typename).toBe(
      'ForbiddenError',
    );
    expect((await rows(uuidOf(onPublic)))[0]?.n).toBe(1);

    expect((await ask(url(), alice, DELETE, { id: done })).deleteOperation).toEqual({
      __typename: 'DeleteOperationSuccess',
      deletedId: done,
    });
    expect(await rows(uuidOf(done))).toEqual([{ n: 0, events: 0 }]);
    expect((await ask(url(), alice, READ, { id: done })).operation).toBeNull();
    expect((await ask(url(), root, DELETE, { id: onPublic })).deleteOperation.__typename).toBe(
      'DeleteOperationSuccess',
    );
  });
});
