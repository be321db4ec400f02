import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { StartBatch, settleBatch } from '../support/batches.ts';
import { gql } from '../support/client.ts';
import { type Fixture, useServer } from '../support/fixtures.ts';

/**
 * startBatch validation, through GraphQL: every problem has its own test, a batch with several
 * problems lists all of them, and a rejected (or validateOnly) batch creates nothing.
 */

const server = useServer();

interface Item {
  id: string;
  type: string;
  input?: unknown;
  dependsOn?: string[];
}

interface BatchRequest {
  items: Item[];
  atomic?: boolean;
  continueOnError?: boolean;
  validateOnly?: boolean;
  idempotencyKey?: string;
}

const echo = (id: string, input: Record<string, unknown> = {}, dependsOn?: string[]): Item => ({
  id,
  type: 'diagnostics.echo',
  input,
  ...(dependsOn ? { dependsOn } : {}),
});

async function counts(fixture: Fixture) {
  const [row] = await fixture.db.query(
    `SELECT (SELECT count(*) FROM "Operation") AS operations, (SELECT count(*) FROM "OperationEvent") AS events,
            (SELECT count(*) FROM pgboss.job) AS jobs`,
  );
  return row;
}

/** Runs `action` and checks that no operation, event or job was written meanwhile. */
async function changesNothing<T>(action: () => Promise<T>, fixture: Fixture = server): Promise<T> {
  const before = await counts(fixture);
  const result = await action();
  expect(await counts(fixture)).toEqual(before);
  return result;
}

async function startBatch(request: BatchRequest, fixture: Fixture = server, token = fixture.tokens.alice) {
  const response = await gql(fixture.app.url, StartBatch, { input: request as never }, token);
  expect(response.errors).toBeUndefined();
  return response.data!.startBatch;
}

/** Submits a batch that must be rejected, checks it created nothing, and returns its problems. */
async function problemsOf(request: BatchRequest, fixture: Fixture = server) {
  const result = await changesNothing(() => startBatch(request, fixture), fixture);
  if (result.__typename !== 'ValidationError') {
    throw new Error(`expected a ValidationError, got ${JSON.stringify(result)}`);
  }
  return result.problems;
}

/** Submits a batch with validateOnly, which must be accepted, and returns its plan. */
async function planOf(request: BatchRequest, fixture: Fixture = server) {
  const result = await changesNothing(() => startBatch({ ...request, validateOnly: true }, fixture), fixture);
  if (result.__typename !== 'StartBatchSuccess') {
    throw new Error(`expected StartBatchSuccess, got ${JSON.stringify(result)}`);
  }
  expect(result.batch).toBeNull();
  expect(result.replayed).toBe(false);
  return result.plan;
}

const NOT_COMPENSABLE = (type: string) =>
  `${type} has no compensation step, so it cannot be part of an atomic batch`;

describe('startBatch validation: each problem', () => {
  it('rejects an empty batch', async () => {
    expect(await problemsOf({ items: [] })).toEqual([
      { path: ['items'], message: 'a batch needs at least one item' },
    ]);
  });

  it('rejects more than 1,000 items and accepts exactly 1,000', async () => {
    const items = Array.from({ length: 1001 }, (_, i) => echo(`i${i}`));
    expect(await problemsOf({ items })).toEqual([
      { path: ['items'], message: 'at most 1000 items (got 1001)' },
    ]);
    expect((await planOf({ items: items.slice(0, 1000) })).itemCount).toBe(1000);
  });

  it('rejects duplicate item ids, naming the first item with that id', async () => {
    expect(await problemsOf({ items: [echo('a'), echo('b'), echo('a')] })).toEqual([
      { path: ['items', '2', 'id'], message: 'duplicate id "a" (also item 0)' },
    ]);
  });

  it('rejects a missing (empty) item id', async () => {
    expect(await problemsOf({ items: [echo('a'), echo('')] })).toEqual([
      { path: ['items', '1', 'id'], message: 'is required' },
    ]);
  });

  it('rejects an item id with characters other than letters, digits, "_" and "-"', async () => {
    expect(await problemsOf({ items: [echo('a b')] })).toEqual([
      { path: ['items', '0', 'id'], message: 'must be 1–100 letters, digits, "_" or "-"' },
    ]);
  });

  it('rejects a missing (empty) item type', async () => {
    expect(await problemsOf({ items: [echo('a'), { id: 'b', type: '', input: {} }] })).toEqual([
      { path: ['items', '1', 'type'], message: 'is required' },
    ]);
  });

  it('answers an item without id or type in the request with a GraphQL error, creating nothing', async () => {
    // id and type are non-null in the GraphQL input type: such a request never reaches validation.
    const response = await changesNothing(() =>
      gql(
        server.app.url,
        StartBatch,
        { input: { items: [{ type: 'diagnostics.echo', input: {} }] } as never },
        server.tokens.alice,
      ),
    );
    expect(response.data?.startBatch).toBeUndefined();
    expect(response.errors?.[0]?.message).toMatch(/id/);
  });

  it('rejects an unknown type, and the internal batch type', async () => {
    expect(await problemsOf({ items: [{ id: 'a', type: 'no.such.type', input: {} }, echo('b')] })).toEqual([
      { path: ['items', '0', 'type'], message: 'unknown operation type "no.such.type"' },
    ]);
    expect(await problemsOf({ items: [{ id: 'a', type: 'batch', input: {} }] })).toEqual([
      { path: ['items', '0', 'type'], message: 'unknown operation type "batch"' },
    ]);
  });

  it('rejects dependsOn naming an unknown item, at its index in dependsOn', async () => {
    expect(await problemsOf({ items: [echo('a'), echo('b', {}, ['a', 'zzz'])] })).toEqual([
      { path: ['items', '1', 'dependsOn', '1'], message: 'unknown item "zzz"' },
    ]);
  });

  it('rejects an item that depends on itself', async () => {
    expect(await problemsOf({ items: [echo('a', {}, ['a'])] })).toEqual([
      { path: ['items', '0', 'dependsOn', '0'], message: 'an item cannot depend on itself' },
    ]);
  });

  it('rejects a direct cycle, with its path', async () => {
    expect(await problemsOf({ items: [echo('a', {}, ['b']), echo('b', {}, ['a'])] })).toEqual([
      {
        path: ['items', '0', 'dependsOn'],
        message: 'dependency cycle (each depends on the next): a → b → a',
      },
    ]);
  });

  it('rejects an indirect cycle, with its path, and not the items that merely depend on it', async () => {
    const items = [
      echo('a', {}, ['b']),
      echo('b', {}, ['c']),
      echo('c', {}, ['a']),
      echo('d', {}, ['a']),
      echo('e'),
    ];
    expect(await problemsOf({ items })).toEqual([
      {
        path: ['items', '0', 'dependsOn'],
        message: 'dependency cycle (each depends on the next): a → b → c → a',
      },
    ]);
  });

  it('rejects a reference to an item that is not an ancestor (a sibling, or an unrelated item)', async () => {
    const items = [
      echo('a'),
      echo('b', { value: '$ref:a.value' }, []),
      echo('c', {}, ['a']),
      echo('d', { value: { deep: ['$ref:c.value'] } }, ['a']),
    ];
    expect(await problemsOf({ items })).toEqual([
      {
        path: ['items', '1', 'input', 'value'],
        message: `$ref:a.value: "a" is not among this item's dependencies (direct or indirect)`,
      },
      {
        path: ['items', '3', 'input', 'value', 'deep', '0'],
        message: `$ref:c.value: "c" is not among this item's dependencies (direct or indirect)`,
      },
    ]);
  });

  it('accepts a reference to an indirect ancestor', async () => {
    const items = [echo('a'), echo('b', {}, ['a']), echo('c', { value: 'x_$ref:a.value_y' }, ['b'])];
    expect((await planOf({ items })).levels).toEqual([
      { level: 0, items: ['a'] },
      { level: 1, items: ['b'] },
      { level: 2, items: ['c'] },
    ]);
  });

  it('rejects a reference to an item that is not in the batch', async () => {
    expect(await problemsOf({ items: [echo('a', { value: 'id=$ref:ghost.value' })] })).toEqual([
      { path: ['items', '0', 'input', 'value'], message: '$ref:ghost.value: no item "ghost" in this batch' },
    ]);
  });

  it("rejects a reference path that the referenced type's output schema says cannot exist", async () => {
    const items = [
      { id: 'create', type: 'collection.create', input: { name: 'never' } },
      {
        id: 'index',
        type: 'collection.index',
        input: { collectionId: '$ref:create.nope', source: { kind: 'folder', path: 'docs' } },
        dependsOn: ['create'],
      },
      echo('deeper', { value: '$ref:create.collectionId.more' }, ['create']),
      echo('echoed', { value: '$ref:deeper.nope' }, ['deeper']),
    ];
    expect(await problemsOf({ items })).toEqual([
      {
        path: ['items', '1', 'input', 'collectionId'],
        message: '$ref:create.nope: collection.create results have no field at nope',
      },
      {
        path: ['items', '2', 'input', 'value'],
        message:
          '$ref:create.collectionId.more: collection.create results have no field at collectionId.more',
      },
      {
        path: ['items', '3', 'input', 'value'],
        message: '$ref:deeper.nope: diagnostics.echo results have no field at nope',
      },
    ]);
  });

  it('rejects interpolating an object result into a string when the output schema says it is one', async () => {
    const items = [
      { id: 'create', type: 'collection.create', input: { name: 'never' } },
      echo('show', { value: 'created: $ref:create' }, ['create']),
      // A scalar field interpolates; the whole result as a whole value keeps its type: both fine.
      echo('fine', { value: ['id=$ref:create.collectionUuid', '$ref:create'] }, ['create']),
    ];
    expect(await problemsOf({ items })).toEqual([
      {
        path: ['items', '1', 'input', 'value'],
        message: '$ref:create: an object cannot be interpolated into a string',
      },
    ]);
  });

  it("rejects inputs that fail their type's schema, each at its path", async () => {
    const items = [
      echo('a', { sleepMs: -1 }),
      echo('b', { failWith: 5 }),
      { id: 'c', type: 'collection.create', input: { name: '' } },
      { id: 'd', type: 'diagnostics.echo', input: 'not an object' },
    ];
    expect(await problemsOf({ items })).toEqual([
      { path: ['items', '0', 'input', 'sleepMs'], message: expect.stringContaining('>=0') },
      { path: ['items', '1', 'input', 'failWith'], message: expect.stringContaining('expected string') },
      { path: ['items', '2', 'input', 'name'], message: expect.stringContaining('>=1') },
      { path: ['items', '3', 'input'], message: expect.stringContaining('expected object') },
    ]);
  });

  it('rejects an unknown input field, naming it', async () => {
    const problems = await problemsOf({ items: [echo('a', { extra: 1 })] });
    expect(problems).toHaveLength(1);
    expect(problems[0]?.path.slice(0, 3)).toEqual(['items', '0', 'input']);
    expect(problems[0]?.message).toContain('extra');
  });

  it('treats references as placeholders: a reference where a number is required is not a problem', async () => {
    const items = [
      echo('a', { value: 5 }),
      echo('b', { sleepMs: '$ref:a.value', value: { list: ['$ref:a.value'] } }, ['a']),
      {
        id: 'create',
        type: 'collection.create',
        input: { name: 'never' },
      },
      {
        id: 'index',
        type: 'collection.index',
        input: {
          collectionId: '$ref:create.collectionId',
          source: { kind: 'folder', path: 'docs' },
          batchSize: '$ref:a.value',
        },
        dependsOn: ['create', 'a'],
      },
    ];
    expect((await planOf({ items })).itemCount).toBe(4);
    // …while a real problem next to a reference in the same input is still reported.
    const withProblem = [echo('a'), echo('b', { sleepMs: '$ref:a.value', failWith: 7 }, ['a'])];
    expect(await problemsOf({ items: withProblem })).toEqual([
      { path: ['items', '1', 'input', 'failWith'], message: expect.any(String) },
    ]);
  });

  it('rejects an atomic batch holding a job type without compensation (diagnostics.sleep, collection.delete)', async () => {
    const items = [
      { id: 'sleep', type: 'diagnostics.sleep', input: { steps: 1, stepMs: 1 } },
      { id: 'create', type: 'collection.create', input: { name: 'never' } },
      {
        id: 'delete',
        type: 'collection.delete',
        input: { collectionId: '$ref:create.collectionId' },
        dependsOn: ['create'],
      },
    ];
    const expected = [
      { path: ['items', '0', 'type'], message: NOT_COMPENSABLE('diagnostics.sleep') },
      { path: ['items', '2', 'type'], message: NOT_COMPENSABLE('collection.delete') },
    ];
    expect(await problemsOf({ items })).toEqual(expected);
    expect(await problemsOf({ items, atomic: true })).toEqual(expected);
    // The same batch is fine when it is not atomic.
    expect((await planOf({ items, atomic: false })).itemCount).toBe(3);
  });

  it('rejects continueOnError on an atomic batch (atomic is the default)', async () => {
    const problem = {
      path: ['continueOnError'],
      message: 'only applies to non-atomic batches (set atomic: false)',
    };
    expect(await problemsOf({ items: [echo('a')], continueOnError: true })).toEqual([problem]);
    expect(await problemsOf({ items: [echo('a')], continueOnError: true, atomic: true })).toEqual([problem]);
    expect((await planOf({ items: [echo('a')], continueOnError: true, atomic: false })).itemCount).toBe(1);
  });

  it('reports each unknown input field at its own path, like startOperation', async () => {
    expect(await problemsOf({ items: [echo('a', { extra: 1, more: 2 })] })).toEqual([
      { path: ['items', '0', 'input', 'extra'], message: 'unknown field "extra"' },
      { path: ['items', '0', 'input', 'more'], message: 'unknown field "more"' },
    ]);
  });

  it('rejects a NUL character in an input with a ValidationError, like startOperation', async () => {
    expect(await problemsOf({ items: [echo('a', { value: { text: 'a\u0000b' } })] })).toEqual([
      { path: ['items', '0', 'input', 'value', 'text'], message: 'must not contain NUL characters' },
    ]);
  });

  it('creates nothing for an input with a NUL character', async () => {
    await changesNothing(() =>
      gql(
        server.app.url,
        StartBatch,
        { input: { items: [echo('a', { value: 'a\u0000b' })] } as never },
        server.tokens.alice,
      ),
    );
  });
});

describe('startBatch validation: several problems at once', () => {
  it('lists every problem of a batch that has many, each with its item and path', async () => {
    const items: Item[] = [
      echo('a', { sleepMs: 'soon' }), // 0: invalid input
      echo('a'), // 1: duplicate id
      { id: 'b', type: 'no.such.type', input: {} }, // 2: unknown type
      echo('c', {}, ['nowhere']), // 3: unknown dependency
      echo('d', {}, ['e']), // 4: cycle d → e → d
      echo('e', {}, ['d']), // 5
      echo('f', { value: '$ref:g.value' }), // 6: reference to a non-ancestor
      { id: 'g', type: 'diagnostics.sleep', input: { steps: 1, stepMs: 1 } }, // 7: not compensable
      { id: 'create', type: 'collection.create', input: { name: 'never' } }, // 8
      echo('h', { value: '$ref:create.nope', failWith: 1 }, ['create']), // 9: bad path + invalid input
      echo('i', { value: 'made $ref:create' }, ['create']), // 10: object interpolated
      { id: '', type: '', input: {} }, // 11: missing id and type
    ];
    const problems = await problemsOf({ items, continueOnError: true });
    const expected = [
      { path: ['continueOnError'], message: 'only applies to non-atomic batches (set atomic: false)' },
      { path: ['items', '0', 'input', 'sleepMs'], message: expect.stringContaining('expected number') },
      { path: ['items', '1', 'id'], message: 'duplicate id "a" (also item 0)' },
      { path: ['items', '2', 'type'], message: 'unknown operation type "no.such.type"' },
      { path: ['items', '3', 'dependsOn', '0'], message: 'unknown item "nowhere"' },
      {
        path: ['items', '4', 'dependsOn'],
        message: 'dependency cycle (each depends on the next): d → e → d',
      },
      {
        path: ['items', '6', 'input', 'value'],
        message: `$ref:g.value: "g" is not among this item's dependencies (direct or indirect)`,
      },
      { path: ['items', '7', 'type'], message: NOT_COMPENSABLE('diagnostics.sleep') },
      {
        path: ['items', '9', 'input', 'value'],
        message: '$ref:create.nope: collection.create results have no field at nope',
      },
      { path: ['items', '9', 'input', 'failWith'], message: expect.stringContaining('expected string') },
      {
        path: ['items', '10', 'input', 'value'],
        message: '$ref:create: an object cannot be interpolated into a string',
      },
      { path: ['items', '11', 'id'], message: 'is required' },
      { path: ['items', '11', 'type'], message: 'is required' },
    ];
    expect(problems).toHaveLength(expected.length);
    expect(problems).toEqual(expect.arrayContaining(expected));
  });
});

describe('startBatch validateOnly', () => {
  it('returns the plan in topological levels (a diamond is [[a], [b, c], [d]]) and creates nothing', async () => {
    // Listed out of order: levels follow the dependencies, and request order within a level.
    const items = [
      echo('d', { value: ['$ref:b.value', '$ref:c.value'] }, ['b', 'c']),
      echo('b', { value: '$ref:a.value' }, ['a']),
      echo('c', {}, ['a']),
      echo('a', { value: 1 }),
    ];
    const plan = await planOf({ items });
    expect(plan).toEqual({
      itemCount: 4,
      levels: [
        { level: 0, items: ['a'] },
        { level: 1, items: ['b', 'c'] },
        { level: 2, items: ['d'] },
      ],
    });
  });

  it('puts independent items in one level', async () => {
    expect((await planOf({ items: [echo('x'), echo('y'), echo('z')] })).levels).toEqual([
      { level: 0, items: ['x', 'y', 'z'] },
    ]);
  });

  it('still reports problems (and creates nothing)', async () => {
    expect(await problemsOf({ items: [], validateOnly: true })).toEqual([
      { path: ['items'], message: 'a batch needs at least one item' },
    ]);
  });
});

describe('startBatch idempotency', () => {
  it('replays a repeated key with the same batch, and answers the same key with other items with a conflict', async () => {
    const request = {
      items: [echo('a', { value: 1 }), echo('b', { value: '$ref:a.value' }, ['a'])],
      idempotencyKey: 'batch-key-1',
    };
    const first = await startBatch(request);
    if (first.__typename !== 'StartBatchSuccess' || !first.batch) throw new Error(JSON.stringify(first));
    expect(first.replayed).toBe(false);
    expect(first.batch.type).toBe('batch');
    // Let it finish, so that counting rows below only sees what the repeats write.
    expect((await settleBatch(server.app.url, server.tokens.alice, first.batch.id)).status).toBe('COMPLETED');

    const again = await changesNothing(() => startBatch(request));
    expect(again).toMatchObject({
      __typename: 'StartBatchSuccess',
      replayed: true,
      batch: { id: first.batch.id, status: 'COMPLETED' },
    });
    if (again.__typename === 'StartBatchSuccess') expect(again.plan).toEqual(first.plan);

    const other = await changesNothing(() =>
      startBatch({ ...request, items: [echo('a', { value: 2 }), request.items[1] as Item] }),
    );
    expect(other).toMatchObject({ __typename: 'IdempotencyKeyConflictError', key: 'batch-key-1' });
    const options = await changesNothing(() => startBatch({ ...request, atomic: false }));
    expect(options).toMatchObject({ __typename: 'IdempotencyKeyConflictError', key: 'batch-key-1' });
    const single = await changesNothing(() =>
      gql(
        server.app.url,
        StartBatch,
        { input: { ...request, items: [request.items[0] as Item] } as never },
        server.tokens.alice,
      ),
    );
    expect(single.data?.startBatch).toMatchObject({ __typename: 'IdempotencyKeyConflictError' });

    // Keys belong to their owner: bob's identical request is a new batch.
    const bobs = await startBatch(request, server, server.tokens.bob);
    expect(bobs).toMatchObject({ __typename: 'StartBatchSuccess', replayed: false });
    if (bobs.__typename !== 'StartBatchSuccess' || !bobs.batch) throw new Error(JSON.stringify(bobs));
    expect(bobs.batch.id).not.toBe(first.batch.id);
    expect((await settleBatch(server.app.url, server.tokens.bob, bobs.batch.id)).status).toBe('COMPLETED');

    const [row] = await server.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM "Operation" WHERE type = 'batch' AND "idempotencyKey" = 'batch-key-1'`,
    );
    expect(Number(row?.n)).toBe(2);
  });

  it('rejects an empty, too long or NUL idempotency key, like startOperation', async () => {
    const answers: unknown[] = [];
    for (const key of ['', 'k'.repeat(256), 'a\u0000b']) {
      const response = await gql(
        server.app.url,
        StartBatch,
        { input: { items: [echo('a')], idempotencyKey: key } as never },
        server.tokens.alice,
      );
      const result = response.data?.startBatch;
      // Let whatever was started end before asserting, so that no later test sees it running.
      if (result?.__typename === 'StartBatchSuccess' && result.batch) {
        await settleBatch(server.app.url, server.tokens.alice, result.batch.id);
      }
      answers.push(result ?? response.errors);
    }
    expect(answers).toEqual(
      Array.from({ length: 3 }, () => ({
        __typename: 'ValidationError',
        message: expect.any(String),
        problems: [{ path: ['idempotencyKey'], message: expect.any(String) }],
      })),
    );
  });
});

describe('startBatch validation: a configured item limit', () => {
  const small = useServer({ batchMaxItems: 3 });

  it('OPSGRAPH_BATCH_MAX_ITEMS sets config.batchMaxItems (default 1000)', () => {
    expect(loadConfig({}).batchMaxItems).toBe(1000);
    expect(loadConfig({ OPSGRAPH_BATCH_MAX_ITEMS: '3' }).batchMaxItems).toBe(3);
  });

  it('rejects more items than config.batchMaxItems', async () => {
    const items = [echo('a'), echo('b'), echo('c'), echo('d')];
    expect(await problemsOf({ items }, small)).toEqual([
      { path: ['items'], message: 'at most 3 items (got 4)' },
    ]);
    expect((await planOf({ items: items.slice(0, 3) }, small)).itemCount).toBe(3);
  });
});
