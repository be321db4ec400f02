import { describe, expect, it } from 'vitest';
import { gql, subscribeWs } from '../support/client.ts';
import { CancelOperation, OperationUpdated } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { startSleep } from '../support/operations.ts';

// No REDIS_URL: events and cancels travel through the in-process bus, on the same code path.
const server = useServer({ redisUrl: undefined });

const start = (input: Record<string, unknown>) => startSleep(server.app.url, server.tokens.alice, input);

describe('in-process pub/sub', () => {
  it('delivers every event of an operation without Redis', async () => {
    const operation = await start({ steps: 4, stepMs: 120 });
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.done;
    const updates = sub.messages.map((m) => m.operationUpdated);
    expect(updates.map((u) => u.sequence)).toEqual(
      Array.from({ length: updates.length }, (_, i) => updates[0]!.sequence + i),
    );
    expect(updates.filter((u) => u.event?.kind === 'PROGRESS').map((u) => u.event!.progress.current)).toEqual(
      [1, 2, 3, 4].filter((step) => step > updates[0]!.operation.progress.current),
    );
    expect(updates.at(-1)?.event?.status).toBe('COMPLETED');
  });

  it('cancels a running handler without Redis', async () => {
    const operation = await start({ steps: 100, stepMs: 100 });
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.waitUntil((m) => m.operationUpdated.event?.kind === 'PROGRESS');
    const { data } = await gql(server.app.url, CancelOperation, { id: operation.id }, server.tokens.alice);
    expect(data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
    await sub.done;
    expect(sub.messages.at(-1)?.operationUpdated.event?.kind).toBe('CANCELLED');
    // Nothing is written after the cancel: the handler was aborted through the in-process bus.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const uuid = Buffer.from(operation.id, 'base64').toString().split(':')[1];
    const rows = await server.db.query<{ kind: string }>(
      'SELECT kind FROM "OperationEvent" WHERE "operationId" = $1 ORDER BY sequence DESC LIMIT 1',
      [uuid],
    );
    expect(rows[0]?.kind).toBe('CANCELLED');
  });
});
