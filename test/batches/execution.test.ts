import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { graphql } from '../gql/index.ts';
import { itemsById, settleBatch, startBatchOk } from '../support/batches.ts';
import { gql } from '../support/client.ts';
import { collectionFolders, Search, writeFiles } from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';

const folders = collectionFolders();
const server = useServer({ sourcesRoot: folders.sourcesRoot, storageDir: folders.storageDir });

/** The item operations of a batch (operations filtered by batchId). */
const BatchItemOperations = graphql(`
  query BatchItemOperations($batchId: ID!) {
    operations(filter: { batchId: $batchId }, first: 100) {
      edges { node { id type status attempt batchItemId startedAt completedAt batch { id } } }
    }
  }
`);

/** One item's operation, read by the operationId the batch outcome gives. */
const ItemOperation = graphql(`
  query ItemOperation($id: ID!) {
    operation(id: $id) { id type status batchItemId result batch { id } }
  }
`);

type Items = ReturnType<typeof itemsById>;
type Item = Items[string];

const url = () => server.app.url;
const alice = () => server.tokens.alice;
const echo = (id: string, input: Record<string, unknown> = {}, dependsOn: string[] = []) => ({
  id,
  type: 'diagnostics.echo',
  input,
  dependsOn,
});

/** The batch's item operations by item id, with their times in ms. */
async function itemOperations(batchId: string) {
  const response = await gql(url(), BatchItemOperations, { batchId }, alice());
  const nodes = response.data?.operations.edges.map((edge) => edge.node) ?? [];
  const ms = (value: unknown) => (value ? new Date(value as string).getTime() : Number.NaN);
  const op = (item: string) => {
    const node = nodes.find((candidate) => candidate.batchItemId === item);
    if (!node) throw new Error(`no operation for item ${item}: ${JSON.stringify(nodes)}`);
    return { ...node, started: ms(node.startedAt), completed: ms(node.completedAt) };
  };
  return { nodes, op };
}

/** Status of each item: { id: status }. */
const statuses = (items: Items) =>
  Object.fromEntries(Object.entries(items).map(([id, item]) => [id, item.status]));
const skippedBy = (item: Item | undefined) => ({ reason: item?.reason, rootCause: item?.rootCause });

describe('batch execution', () => {
  it('runs the seed example: create → index → export, with the result map and the file', async () => {
    writeFiles(folders.sourcesRoot, {
      'seed/a.md': '# Alpha\n\nthe quick brown fox',
      'seed/b.md': '# Beta\n\nlazy dogs sleep',
    });
    const { id } = await startBatchOk(url(), alice(), {
      items: [
        { id: 'create', type: 'collection.create', input: { name: 'seed' } },
        {
          id: 'index',
          type: 'collection.index',
          input: { collectionId: '$ref:create.collectionId', source: { kind: 'folder', path: 'seed' } },
          dependsOn: ['create'],
        },
        {
          id: 'export',
          type: 'collection.export',
          input: { collectionId: '$ref:create.collectionId', file: 'backup_$ref:create.collectionUuid_v2' },
          dependsOn: ['index'],
        },
      ],
    });
    const started = Date.now();
    const batch = await settleBatch(url(), alice(), id);
    console.log(`seed batch settled in ${Date.now() - started} ms`);
    expect(batch.status).toBe('COMPLETED');
    expect(batch.batchOutcome?.status).toBe('COMPLETED');
    expect(batch.batchOutcome?.failed).toEqual([]);
    expect(batch.batchOutcome?.counts).toMatchObject({ completed: 3, failed: 0, skipped: 0, rolledBack: 0 });
    const items = itemsById(batch);
    expect(statuses(items)).toEqual({ create: 'COMPLETED', index: 'COMPLETED', export: 'COMPLETED' });

    const created = items.create?.data as { collectionId: string; collectionUuid: string };
    expect(created.collectionUuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(items.index?.data).toMatchObject({
      collectionId: created.collectionId,
      source: 'folder:seed',
      documents: 2,
      added: 2,
    });
    const file = `backup_${created.collectionUuid}_v2.ndjson.gz`;
    expect(items.export?.data).toMatchObject({ collectionId: created.collectionId, file, documentCount: 2 });
    // Exports live in their owner's folder of the export folder.
    const [owner] = await server.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = 'alice'`);
    expect(existsSync(join(folders.storageDir, owner!.id, file))).toBe(true);
    expect(existsSync(join(folders.storageDir, owner!.id, `${file}.sha256`))).toBe(true);
    const search = await gql(url(), Search, { collectionId: created.collectionId, query: 'fox' }, alice());
    expect(search.data?.search).toMatchObject({ hits: [{ document: { title: 'Alpha' } }] });

    // Each operationId resolves to the item's own operation, with the same result.
    for (const [itemId, item] of Object.entries(items)) {
      // operationId is null only for items the viewer may not see; alice sees all of her batch.
      expect(item.operationId).toEqual(expect.any(String));
      const read = await gql(url(), ItemOperation, { id: item.operationId as string }, alice());
      expect(read.data?.operation).toMatchObject({
        id: item.operationId,
        status: 'COMPLETED',
        batchItemId: itemId,
        result: item.data,
        batch: { id },
      });
    }
    expect(
      (await gql(url(), ItemOperation, { id: items.index?.operationId ?? '' }, alice())).data?.operation
        ?.type,
    ).toBe('collection.index');
    const { nodes } = await itemOperations(id);
    expect(nodes.map((node) => node.batchItemId).sort()).toEqual(['create', 'export', 'index']);
    expect(nodes.map((node) => node.id).sort()).toEqual(
      Object.values(items)
        .map((item) => item.operationId)
        .sort(),
    );
  });

  it('runs a diamond: the shared dependency once, both branches in parallel, the join after both', async () => {
    const { id, plan } = await startBatchOk(url(), alice(), {
      items: [
        echo('a', { value: { n: 1 } }),
        echo('b', { value: '$ref:a.value.n', sleepMs: 800 }, ['a']),
        echo('c', { value: 'c-$ref:a.value.n', sleepMs: 800 }, ['a']),
        echo('d', { value: ['$ref:b.value', '$ref:c.value'] }, ['b', 'c']),
      ],
    });
    expect(plan.levels).toEqual([
      { level: 0, items: ['a'] },
      { level: 1, items: ['b', 'c'] },
      { level: 2, items: ['d'] },
    ]);
    const batch = await settleBatch(url(), alice(), id);
    expect(batch.status).toBe('COMPLETED');
    expect(statuses(itemsById(batch))).toEqual({
      a: 'COMPLETED',
      b: 'COMPLETED',
      c: 'COMPLETED',
      d: 'COMPLETED',
    });
    expect(itemsById(batch).d?.data).toEqual({ value: [1, 'c-1'] });

    const { nodes, op } = await itemOperations(id);
    expect(nodes).toHaveLength(4);
    expect(nodes.filter((node) => node.batchItemId === 'a')).toHaveLength(1);
    const [a, b, c, d] = [op('a'), op('b'), op('c'), op('d')];
    expect(a.attempt).toBe(1);
    const overlap = Math.min(b.completed, c.completed) - Math.max(b.started, c.started);
    console.log(
      `diamond: a ${a.completed - a.started} ms, b ${b.completed - b.started} ms, c ${c.completed - c.started} ms, ` +
        `b/c start gap ${Math.abs(b.started - c.started)} ms, overlap ${overlap} ms, ` +
        `d started ${d.started - Math.max(b.completed, c.completed)} ms after the later of b and c, total ${d.completed - a.started} ms`,
    );
    expect(b.started).toBeGreaterThanOrEqual(a.completed);
    expect(c.started).toBeGreaterThanOrEqual(a.completed);
    expect(overlap).toBeGreaterThan(500);
    expect(d.started).toBeGreaterThanOrEqual(Math.max(b.completed, c.completed));
  });

  it('non-atomic without continueOnError: no new item starts after the first failure', async () => {
    const { id } = await startBatchOk(url(), alice(), {
      atomic: false,
      items: [
        echo('a1', { failWith: 'a1 broke' }),
        echo('a2', {}, ['a1']),
        echo('a3', {}, ['a2']),
        echo('b1', { value: 'b1', sleepMs: 1500 }),
        echo('b2', { value: '$ref:b1.value' }, ['b1']),
      ],
    });
    const batch = await settleBatch(url(), alice(), id);
    const items = itemsById(batch);
    expect(statuses(items)).toEqual({
      a1: 'FAILED',
      a2: 'SKIPPED',
      a3: 'SKIPPED',
      b1: 'COMPLETED',
      b2: 'SKIPPED',
    });
    expect(items.a1?.error).toEqual({ code: 'REQUESTED_FAILURE', message: 'a1 broke' });
    expect(skippedBy(items.a2)).toEqual({ reason: 'dependency a1 failed', rootCause: 'a1' });
    // Transitively skipped: names the root cause (a2 and a3 are skipped in the same pass).
    expect(items.a3?.rootCause).toBe('a1');
    expect(items.a3?.reason).toMatch(/^(dependency a2 was skipped|not started: item a1 failed)$/);
    // Not a dependent of a1: skipped because the batch stops starting items.
    expect(skippedBy(items.b2)).toEqual({ reason: 'not started: item a1 failed', rootCause: 'a1' });
    // One item completed beside the failure: the rules give PARTIALLY_COMPLETED, and the batch
    // operation itself COMPLETED with that status in its result.
    expect(batch.batchOutcome).toMatchObject({
      status: 'PARTIALLY_COMPLETED',
      failed: ['a1'],
      counts: { completed: 1, failed: 1, skipped: 3, cancelled: 0, rolledBack: 0 },
    });
    expect(batch.status).toBe('COMPLETED');
    expect((batch.result as { status: string }).status).toBe('PARTIALLY_COMPLETED');

    const { op } = await itemOperations(id);
    console.log(
      `stop on error: a1 failed after ${op('a1').completed - op('a1').started} ms; ` +
        `b1 kept running ${op('b1').completed - op('a1').completed} ms after it and completed`,
    );
    expect(op('b1').completed).toBeGreaterThan(op('a1').completed);
    expect(op('b2').startedAt).toBeNull();
    expect(op('a2').startedAt).toBeNull();
    expect(op('a3').startedAt).toBeNull();
  });

  it('non-atomic with continueOnError: the independent branch runs to the end', async () => {
    const { id } = await startBatchOk(url(), alice(), {
      atomic: false,
      continueOnError: true,
      items: [
        echo('a1', { failWith: 'a1 broke' }),
        echo('a2', {}, ['a1']),
        echo('a3', {}, ['a2']),
        echo('b1', { value: 1, sleepMs: 300 }),
        echo('b2', { value: '$ref:b1.value', sleepMs: 300 }, ['b1']),
        echo('b3', { value: ['$ref:b2.value'] }, ['b2']),
      ],
    });
    const batch = await settleBatch(url(), alice(), id);
    const items = itemsById(batch);
    expect(statuses(items)).toEqual({
      a1: 'FAILED',
      a2: 'SKIPPED',
      a3: 'SKIPPED',
      b1: 'COMPLETED',
      b2: 'COMPLETED',
      b3: 'COMPLETED',
    });
    expect(skippedBy(items.a2)).toEqual({ reason: 'dependency a1 failed', rootCause: 'a1' });
    expect(skippedBy(items.a3)).toEqual({ reason: 'dependency a2 was skipped', rootCause: 'a1' });
    expect(items.b3?.data).toEqual({ value: [1] });
    expect(batch.batchOutcome).toMatchObject({
      status: 'PARTIALLY_COMPLETED',
      failed: ['a1'],
      counts: { pending: 0, running: 0, completed: 3, failed: 1, skipped: 2, cancelled: 0, rolledBack: 0 },
    });
    expect(batch.status).toBe('COMPLETED');
    expect(batch.result).toMatchObject({ status: 'PARTIALLY_COMPLETED', failed: ['a1'] });

    const { op } = await itemOperations(id);
    const t0 = Math.min(op('a1').started, op('b1').started);
    console.log(
      `continueOnError: a1 failed at +${op('a1').completed - t0} ms; ` +
        `b2 started at +${op('b2').started - t0} ms, b3 completed at +${op('b3').completed - t0} ms`,
    );
    expect(op('b2').started).toBeGreaterThan(op('a1').completed);
  });
});
