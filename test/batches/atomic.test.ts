import { describe, expect, it } from 'vitest';
import { itemsById, settleBatch, startBatchOk } from '../support/batches.ts';
import { gql } from '../support/client.ts';
import {
  collectionFolders,
  createCollection,
  GetCollection,
  Search,
  settle,
  startOk,
  writeFiles,
} from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';

const folders = collectionFolders();
const server = useServer({ sourcesRoot: folders.sourcesRoot, storageDir: folders.storageDir });

const url = () => server.app.url;
const alice = () => server.tokens.alice;
const uuidOf = (operationId: string) => Buffer.from(operationId, 'base64').toString().split(':')[1] as string;
const statuses = (items: ReturnType<typeof itemsById>) =>
  Object.fromEntries(Object.entries(items).map(([id, item]) => [id, item.status]));
const count = async (sql: string, values: unknown[]) =>
  Number((await server.db.query<{ n: string }>(sql, values))[0]?.n);

/** The kinds of the events of a batch's item operations, by item id. */
async function itemEventKinds(batchUuid: string) {
  const rows = await server.db.query<{ item: string; kinds: string[] }>(
    `SELECT o."batchItemId" AS item, array_agg(e.kind ORDER BY e.sequence) AS kinds
       FROM "Operation" o JOIN "OperationEvent" e ON e."operationId" = o.id
      WHERE o."batchId" = $1::uuid GROUP BY o."batchItemId"`,
    [batchUuid],
  );
  return Object.fromEntries(rows.map((row) => [row.item, row.kinds]));
}

/** The items of a batch in the order they were rolled back. */
async function rolledBackOrder(batchId: string) {
  const rows = await server.db.query<{ item: string }>(
    `SELECT o."batchItemId" AS item FROM "OperationEvent" e JOIN "Operation" o ON o.id = e."operationId"
      WHERE o."batchId" = $1::uuid AND e.kind = 'ROLLED_BACK' ORDER BY e."createdAt"`,
    [uuidOf(batchId)],
  );
  return rows.map((row) => row.item);
}

describe('atomic batches', () => {
  it('rolls back completed items (newest first) and skips the rest when the third item fails', async () => {
    writeFiles(folders.sourcesRoot, {
      'atomic/a.md': '# One\n\nrollback candidates',
      'atomic/b.md': '# Two\n\nmore rollback candidates',
    });
    const { id } = await startBatchOk(url(), alice(), {
      items: [
        { id: 'c1', type: 'collection.create', input: { name: 'doomed' } },
        {
          id: 'c2',
          type: 'collection.index',
          input: { collectionId: '$ref:c1.collectionId', source: { kind: 'folder', path: 'atomic' } },
          dependsOn: ['c1'],
        },
        {
          id: 'c3',
          type: 'diagnostics.echo',
          input: { failWith: 'c3 gives up', sleepMs: 100 },
          dependsOn: ['c1', 'c2'],
        },
        { id: 'c4', type: 'diagnostics.echo', input: { value: 4 }, dependsOn: ['c3'] },
      ],
    });
    const started = Date.now();
    const batch = await settleBatch(url(), alice(), id);
    console.log(`atomic (jobs) batch failed and rolled back in ${Date.now() - started} ms`);
    const items = itemsById(batch);
    expect(statuses(items)).toEqual({ c1: 'ROLLED_BACK', c2: 'ROLLED_BACK', c3: 'FAILED', c4: 'SKIPPED' });
    expect(batch.status).toBe('FAILED');
    expect(batch.error).toEqual({ code: 'BATCH_FAILED', message: 'failed items: c3' });
    expect(batch.batchOutcome).toMatchObject({
      status: 'FAILED',
      failed: ['c3'],
      counts: { pending: 0, running: 0, completed: 0, failed: 1, skipped: 1, cancelled: 0, rolledBack: 2 },
    });
    expect(items.c3?.error).toEqual({ code: 'REQUESTED_FAILURE', message: 'c3 gives up' });
    expect(items.c4).toMatchObject({ reason: 'dependency c3 failed', rootCause: 'c3' });

    // The work was really done (the data stays in the outcome) and is now undone.
    const created = items.c1?.data as { collectionId: string; collectionUuid: string };
    const { collectionId, collectionUuid } = created;
    expect(items.c2?.data).toMatchObject({ collectionId, added: 2 });
    expect(await count(`SELECT count(*) AS n FROM "Collection" WHERE id = $1::uuid`, [collectionUuid])).toBe(
      0,
    );
    expect(
      await count(`SELECT count(*) AS n FROM "Document" WHERE "collectionId" = $1::uuid`, [collectionUuid]),
    ).toBe(0);
    expect(
      await count(`SELECT count(*) AS n FROM "Chunk" WHERE "collectionId" = $1::uuid`, [collectionUuid]),
    ).toBe(0);
    expect((await gql(url(), GetCollection, { id: collectionId }, alice())).data?.collection).toBeNull();

    // Compensations ran in reverse order: the index (c2) before the create (c1).
    expect(await rolledBackOrder(id)).toEqual(['c2', 'c1']);
  });

  it('undoes a job item on an existing collection: only the documents it added go', async () => {
    writeFiles(folders.sourcesRoot, {
      'kept/a.md': '# Kept\n\noriginal text',
      'extra/b.md': '# Extra\n\nzebra',
    });
    const kept = await createCollection(url(), alice(), { name: 'kept' });
    const index = await startOk(url(), alice(), 'collection.index', {
      collectionId: kept,
      source: { kind: 'folder', path: 'kept' },
    });
    expect((await settle(url(), alice(), index.id)).status).toBe('COMPLETED');
    const { id } = await startBatchOk(url(), alice(), {
      items: [
        {
          id: 'append',
          type: 'collection.append',
          input: { collectionId: kept, source: { kind: 'folder', path: 'extra' } },
        },
        { id: 'boom', type: 'diagnostics.echo', input: { failWith: 'boom' }, dependsOn: ['append'] },
      ],
    });
    const batch = await settleBatch(url(), alice(), id);
    expect(statuses(itemsById(batch))).toEqual({ append: 'ROLLED_BACK', boom: 'FAILED' });
    expect(itemsById(batch).append?.data).toMatchObject({ added: 1 });
    expect((await gql(url(), GetCollection, { id: kept }, alice())).data?.collection?.documentCount).toBe(1);
    const zebra = await gql(url(), Search, { collectionId: kept, query: 'zebra' }, alice());
    expect(zebra.data?.search).toMatchObject({ hits: [] });
    const original = await gql(url(), Search, { collectionId: kept, query: 'original' }, alice());
    expect(original.data?.search).toMatchObject({ hits: [{ document: { title: 'Kept' } }] });
  });

  it.each([
    ['an existing collection', 'existing'],
    ['an earlier item of the batch', 'inline-1'],
  ])('inline items only: one transaction, rolled back when a name duplicates %s', async (_, duplicate) => {
    await createCollection(url(), alice(), { name: 'existing' }).catch(() => undefined);
    const before = await server.db.query<{ name: string }>(`SELECT name FROM "Collection" ORDER BY name`);
    const { id } = await startBatchOk(url(), alice(), {
      items: [
        { id: 'i1', type: 'collection.create', input: { name: 'inline-1' } },
        { id: 'i2', type: 'collection.create', input: { name: 'inline-2' } },
        { id: 'i3', type: 'collection.create', input: { name: duplicate } },
        { id: 'i4', type: 'collection.create', input: { name: 'inline-4' } },
      ],
    });
    const started = Date.now();
    const batch = await settleBatch(url(), alice(), id);
    console.log(`atomic inline batch (duplicate of ${duplicate}) settled in ${Date.now() - started} ms`);
    const items = itemsById(batch);
    expect(statuses(items)).toEqual({ i1: 'ROLLED_BACK', i2: 'ROLLED_BACK', i3: 'FAILED', i4: 'SKIPPED' });
    expect(items.i3?.error?.code).toBe('COLLECTION_NAME_TAKEN');
    expect(items.i3?.error?.message).toContain(`"${duplicate}"`);
    for (const rolled of [items.i1, items.i2]) {
      expect(rolled).toMatchObject({
        reason: "rolled back with the batch's transaction: item i3 failed",
        rootCause: 'i3',
        data: null,
      });
    }
    expect(items.i4).toMatchObject({ reason: 'not started: item i3 failed', rootCause: 'i3' });
    expect(batch.status).toBe('FAILED');
    expect(batch.batchOutcome).toMatchObject({
      status: 'FAILED',
      failed: ['i3'],
      counts: { completed: 0, failed: 1, skipped: 1, rolledBack: 2 },
    });

    // Nothing of the batch remains: same collections as before, no item linked to one.
    expect(await server.db.query(`SELECT name FROM "Collection" ORDER BY name`)).toEqual(before);
    const batchUuid = uuidOf(id);
    expect(
      await count(
        `SELECT count(*) AS n FROM "Operation" WHERE "batchId" = $1::uuid AND "collectionId" IS NOT NULL`,
        [batchUuid],
      ),
    ).toBe(0);
    // One transaction: the items' STARTED/COMPLETED events were rolled back with it.
    const kinds = await itemEventKinds(batchUuid);
    console.log(`item events: ${JSON.stringify(kinds)}`);
    expect(kinds).toEqual({
      i1: ['CREATED', 'ROLLED_BACK'],
      i2: ['CREATED', 'ROLLED_BACK'],
      i3: ['CREATED', 'FAILED'],
      i4: ['CREATED', 'SKIPPED'],
    });
  });

  it('inline items only, listed dependent first: runs them in dependency order', async () => {
    const { id } = await startBatchOk(url(), alice(), {
      items: [
        {
          id: 'child',
          type: 'collection.create',
          input: { name: 'child-of-$ref:parent.collectionUuid' },
          dependsOn: ['parent'],
        },
        { id: 'parent', type: 'collection.create', input: { name: 'parent' } },
      ],
    });
    const batch = await settleBatch(url(), alice(), id);
    expect(statuses(itemsById(batch))).toEqual({ child: 'COMPLETED', parent: 'COMPLETED' });
  });

  it('job items listed dependent first: compensated in reverse dependency order', async () => {
    writeFiles(folders.sourcesRoot, { 'order/a.md': '# Order\n\ntext' });
    const { id } = await startBatchOk(url(), alice(), {
      items: [
        {
          id: 'index',
          type: 'collection.index',
          input: { collectionId: '$ref:create.collectionId', source: { kind: 'folder', path: 'order' } },
          dependsOn: ['create'],
        },
        { id: 'create', type: 'collection.create', input: { name: 'order' } },
        { id: 'boom', type: 'diagnostics.echo', input: { failWith: 'boom' }, dependsOn: ['index'] },
      ],
    });
    const batch = await settleBatch(url(), alice(), id);
    expect(statuses(itemsById(batch))).toEqual({
      index: 'ROLLED_BACK',
      create: 'ROLLED_BACK',
      boom: 'FAILED',
    });
    expect(await rolledBackOrder(id)).toEqual(['index', 'create']);
  });
});
