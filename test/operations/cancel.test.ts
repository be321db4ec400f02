import { describe, expect, it } from 'vitest';
import { gql, subscribeWs } from '../support/client.ts';
import { CancelOperation, GetOperation, OperationUpdated } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { startSleep } from '../support/operations.ts';

const server = useServer();

const start = (input: Record<string, unknown>) => startSleep(server.app.url, server.tokens.alice, input);

async function jobState(id: string): Promise<string | undefined> {
  const uuid = Buffer.from(id, 'base64').toString().split(':')[1];
  const rows = await server.db.query<{ state: string }>(
    'SELECT j.state FROM pgboss.job j JOIN "Operation" o ON o."jobId" = j.id WHERE o.id = $1',
    [uuid],
  );
  return rows[0]?.state;
}

describe('cancelOperation', () => {
  it('cancels a running operation: CANCELLED at once, handler aborted, nothing reported after', async () => {
    const operation = await start({ steps: 50, stepMs: 100 });
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.waitUntil((m) => m.operationUpdated.event?.kind === 'PROGRESS');
    const { data } = await gql(
      server.app.url,
      CancelOperation,
      { id: operation.id, reason: 'changed my mind' },
      server.tokens.alice,
    );
    expect(data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
    if (data?.cancelOperation.__typename !== 'CancelOperationSuccess') return;
    expect(data.cancelOperation.operation.status).toBe('CANCELLED');
    expect(data.cancelOperation.operation.error).toEqual({ code: 'CANCELLED', message: 'changed my mind' });
    await sub.done;
    const last = sub.messages.at(-1)!.operationUpdated;
    expect(last.event?.kind).toBe('CANCELLED');

    // The handler stopped: no further events are written after the cancel.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await gql(server.app.url, GetOperation, { id: operation.id }, server.tokens.alice);
    const events = after.data!.operation!.events.edges.map((edge) => edge.node);
    expect(events.at(-1)?.kind).toBe('CANCELLED');
    expect(after.data!.operation!.progress.current).toBeLessThan(50);
    expect(await jobState(operation.id)).toMatch(/cancelled|completed/);
  });

  it('cancels a PENDING operation and its job before any worker takes it', async () => {
    // Fill every worker slot so the next operation stays PENDING: the 8 regular slots, and the
    // fair-share slots, which take only an operation queued while its owner had nothing else
    // unfinished (at most the first blocker), so 9 blockers fill the regular slots in any case.
    const blockers = await Promise.all(Array.from({ length: 9 }, () => start({ steps: 1, stepMs: 3000 })));
    const pending = await start({ steps: 1, stepMs: 10 });
    const { data } = await gql(server.app.url, CancelOperation, { id: pending.id }, server.tokens.alice);
    expect(data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
    const read = await gql(server.app.url, GetOperation, { id: pending.id }, server.tokens.alice);
    expect(read.data!.operation!.status).toBe('CANCELLED');
    expect(read.data!.operation!.startedAt).toBeNull();
    expect(await jobState(pending.id)).toBe('cancelled');
    await Promise.all(
      blockers.map((b) => gql(server.app.url, CancelOperation, { id: b.id }, server.tokens.alice)),
    );
  });

  it('discards the result of a handler that ignores its signal', async () => {
    const operation = await start({ steps: 6, stepMs: 100, ignoreCancel: true });
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.waitUntil((m) => m.operationUpdated.event?.kind === 'PROGRESS');
    await gql(server.app.url, CancelOperation, { id: operation.id }, server.tokens.alice);
    await sub.done;
    // Wait past the handler's natural end (6 × 100 ms): its return value must not land.
    await new Promise((resolve) => setTimeout(resolve, 900));
    const read = await gql(server.app.url, GetOperation, { id: operation.id }, server.tokens.alice);
    expect(read.data!.operation!.status).toBe('CANCELLED');
    expect(read.data!.operation!.result).toBeNull();
    expect(read.data!.operation!.events.edges.map((edge) => edge.node).at(-1)?.kind).toBe('CANCELLED');
  });

  it('refuses to cancel a COMPLETED operation with IllegalTransitionError and changes nothing', async () => {
    const operation = await start({ steps: 1, stepMs: 1 });
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.done;
    const before = await gql(server.app.url, GetOperation, { id: operation.id }, server.tokens.alice);
    const { data } = await gql(server.app.url, CancelOperation, { id: operation.id }, server.tokens.alice);
    expect(data?.cancelOperation).toMatchObject({
      __typename: 'IllegalTransitionError',
      from: 'COMPLETED',
      to: 'CANCELLED',
    });
    const after = await gql(server.app.url, GetOperation, { id: operation.id }, server.tokens.alice);
    expect(after.data).toEqual(before.data);
  });
});
