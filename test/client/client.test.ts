import {
  type BatchUpdate,
  createClient,
  type Operation,
  type OperationState,
  type OperationUpdate,
  OpsgraphAuthError,
  OpsgraphError,
  upsertOperation,
  watchOperationState,
} from '@opsgraph/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { REDIS_URL } from '../support/services.ts';

let db: TestDatabase;
let server: ServerProcess | undefined;
let token: string;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await spawnServer({
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
    OPSGRAPH_ROLE: 'all',
  });
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await server?.stop('SIGKILL');
  await db?.drop();
});

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of stream) all.push(item);
  return all;
}

describe('typed mutations', () => {
  it('starts and cancels an operation, with failures as typed union members', async () => {
    const client = createClient({ url: server!.url, token });
    const started = await client.startOperation({
      type: 'diagnostics.sleep',
      input: { steps: 100, stepMs: 100 },
    });
    expect(started.__typename).toBe('StartOperationSuccess');
    if (started.__typename !== 'StartOperationSuccess') return;
    expect(started.operation.status).toBe('PENDING');

    const cancelled = await client.cancelOperation(started.operation.id, 'no longer needed');
    expect(cancelled.__typename).toBe('CancelOperationSuccess');
    const updates = await collect(client.watchOperation(started.operation.id));
    expect(updates.at(-1)?.operation.status).toBe('CANCELLED');

    const page = await client.listOperations({ filter: { status: ['CANCELLED'] }, first: 5 });
    expect(page.edges.map((edge) => edge.node.id)).toContain(started.operation.id);

    const again = await client.cancelOperation(started.operation.id);
    expect(again.__typename).toBe('IllegalTransitionError');
    const unknown = await client.startOperation({ type: 'no.such.type', input: {} });
    expect(unknown.__typename).toBe('UnknownOperationTypeError');
    if (unknown.__typename === 'UnknownOperationTypeError')
      expect(unknown.knownTypes).toContain('diagnostics.sleep');
    client.close();
  });

  it('reports a GraphQL error of a subscription as an OpsgraphError with its code, without retrying', async () => {
    // Bob's operation: alice may not see it.
    const bob = createClient({ url: server!.url, token: await tokenFor(db.url, 'bob') });
    const started = await bob.startOperation({ type: 'diagnostics.sleep', input: { steps: 0, stepMs: 0 } });
    if (started.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
    bob.close();
    for (const transport of ['ws', 'sse'] as const) {
      const client = createClient({ url: server!.url, token, transport });
      const error = await collect(client.watchOperation(started.operation.id)).catch((e: unknown) => e);
      expect(error, transport).toBeInstanceOf(OpsgraphError);
      expect((error as OpsgraphError).code, transport).toBe('NOT_FOUND');
      client.close();
    }
  });
});

describe.each(['ws', 'sse'] as const)('over %s', (transport) => {
  it('starts a batch (typed) and watches it to its end, each update once and in order', async () => {
    const client = createClient({ url: server!.url, token, transport });
    const started = await client.startBatch({
      atomic: false,
      items: [
        { id: 'first', type: 'diagnostics.sleep', input: { steps: 3, stepMs: 50 } },
        { id: 'second', type: 'diagnostics.sleep', input: { steps: 3, stepMs: 50 }, dependsOn: ['first'] },
      ],
    });
    if (started.__typename !== 'StartBatchSuccess' || !started.batch)
      throw new Error(JSON.stringify(started));
    expect(started.plan.levels.map((level) => level.items)).toEqual([['first'], ['second']]);

    const updates: BatchUpdate[] = await collect(client.watchBatch(started.batch.id, { afterSequence: 0 }));
    const sequences = updates.map((update) => update.sequence);
    expect(sequences).toEqual(Array.from({ length: sequences.length }, (_, i) => i + 1));
    const last = updates.at(-1)!;
    expect(last.event?.status).toBe('COMPLETED');
    expect(last.operation.batchOutcome?.status).toBe('COMPLETED');
    expect(last.operation.batchOutcome?.items.map((item) => [item.id, item.status])).toEqual([
      ['first', 'COMPLETED'],
      ['second', 'COMPLETED'],
    ]);
    client.close();
  });

  it('ends the stream of an operation that already ended after its current state', async () => {
    const client = createClient({ url: server!.url, token, transport });
    const started = await client.startOperation({
      type: 'diagnostics.sleep',
      input: { steps: 0, stepMs: 0 },
    });
    if (started.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
    const all = await collect(client.watchOperation(started.operation.id));
    expect(all.at(-1)?.operation.status).toBe('COMPLETED');
    // Watching it again: its state, and the end.
    const again: OperationUpdate[] = await collect(client.watchOperation(started.operation.id));
    expect(again.map((update) => update.event)).toEqual([null]);
    client.close();
  });

  it('fails at once with OpsgraphAuthError for a bad token, asking for a token once', async () => {
    let asked = 0;
    const client = createClient({
      url: server!.url,
      transport,
      getToken: () => {
        asked += 1;
        return 'not-a-token';
      },
    });
    const error = await collect(client.watchOperation('T3BlcmF0aW9uOm5vbmU=')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpsgraphAuthError);
    expect(asked).toBe(1);
    await expect(client.startOperation({ type: 'diagnostics.sleep', input: {} })).rejects.toBeInstanceOf(
      OpsgraphAuthError,
    );
    client.close();
  });
});

describe('live state (what the React hooks render)', () => {
  it('follows an operation from its first event to COMPLETED, connected while it streams', async () => {
    const client = createClient({ url: server!.url, token });
    const started = await client.startOperation({
      type: 'diagnostics.sleep',
      input: { steps: 4, stepMs: 50 },
    });
    if (started.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
    const states: OperationState[] = [];
    await watchOperationState(client, started.operation.id, 'operation', (state) => states.push(state));
    const last = states.at(-1)!;
    expect(last).toMatchObject({ status: 'COMPLETED', done: true, connected: false, error: null });
    expect(last.events.map((event) => event.sequence)).toEqual(
      Array.from({ length: last.operation!.sequence }, (_, i) => i + 1),
    );
    expect(last.progress).toMatchObject({ current: 4, total: 4 });
    expect(states.some((state) => state.connected)).toBe(true);
    client.close();
  });

  it('reports an auth error as state, without retrying', async () => {
    const client = createClient({ url: server!.url, token: 'bad' });
    const states: OperationState[] = [];
    await watchOperationState(client, 'T3BlcmF0aW9uOm5vbmU=', 'operation', (state) => states.push(state));
    expect(states.at(-1)?.error).toBeInstanceOf(OpsgraphAuthError);
    client.close();
  });

  it('merges list pages and changes by id, the higher sequence winning, newest first', () => {
    const op = (id: string, sequence: number, createdAt: string) =>
      ({ id, sequence, createdAt }) as Operation;
    let list = upsertOperation([], op('a', 1, '2026-01-01T00:00:01Z'));
    list = upsertOperation(list, op('b', 1, '2026-01-01T00:00:02Z'));
    list = upsertOperation(list, op('a', 3, '2026-01-01T00:00:01Z'));
    list = upsertOperation(list, op('a', 2, '2026-01-01T00:00:01Z'));
    expect(list.map((item) => [item.id, item.sequence])).toEqual([
      ['b', 1],
      ['a', 3],
    ]);
  });
});
