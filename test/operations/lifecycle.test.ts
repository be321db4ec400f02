import { describe, expect, it } from 'vitest';
import { gql, subscribeSse, subscribeWs } from '../support/client.ts';
import { GetOperation, OperationTypes, OperationUpdated } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { startSleep } from '../support/operations.ts';

const server = useServer();

const start = (token: string, input: Record<string, unknown>) => startSleep(server.app.url, token, input);

function expectConsecutive(sequences: number[]) {
  for (let i = 1; i < sequences.length; i += 1) expect(sequences[i]).toBe(sequences[i - 1]! + 1);
}

describe('operation lifecycle', () => {
  it('lists diagnostics.sleep with its JSON Schema', async () => {
    const { data } = await gql(server.app.url, OperationTypes, {}, server.tokens.alice);
    const sleep = data?.operationTypes.find((type) => type.name === 'diagnostics.sleep');
    expect(sleep?.inputSchema).toMatchObject({
      type: 'object',
      required: expect.arrayContaining(['steps', 'stepMs']),
    });
  });

  it('runs an operation and streams PENDING, PROCESSING, every progress step and COMPLETED over WebSocket', async () => {
    const operation = await start(server.tokens.alice, { steps: 5, stepMs: 150 });
    expect(operation.status).toBe('PENDING');
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.done;
    expect(sub.errors).toEqual([]);
    const updates = sub.messages.map((m) => m.operationUpdated);
    expect(updates[0]?.event).toBeNull();
    const statuses = [updates[0]!.operation.status, ...updates.slice(1).map((u) => u.event!.status)];
    expect(statuses).toContain('PROCESSING');
    expect(statuses.at(-1)).toBe('COMPLETED');
    // stepMs (150) exceeds the progress interval (100), so every step is persisted and delivered.
    const progress = updates
      .filter((u) => u.event?.kind === 'PROGRESS')
      .map((u) => u.event!.progress.current);
    expect(progress).toEqual(
      [1, 2, 3, 4, 5].filter((step) => step > (updates[0]!.operation.progress.current ?? 0)),
    );
    expectConsecutive(updates.map((u) => u.sequence));
    expect(updates.at(-1)!.operation.result).toMatchObject({ steps: 5 });
  });

  it('streams the same over SSE', async () => {
    const operation = await start(server.tokens.alice, { steps: 3, stepMs: 150 });
    const sub = subscribeSse(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.done;
    expect(sub.errors).toEqual([]);
    const updates = sub.messages.map((m) => m.operationUpdated);
    expect(updates[0]?.event).toBeNull();
    expect(updates.at(-1)?.event?.status).toBe('COMPLETED');
    expectConsecutive(updates.map((u) => u.sequence));
  });

  it('gives a late subscriber the current state then every later event, and replays with afterSequence', async () => {
    const operation = await start(server.tokens.alice, { steps: 12, stepMs: 100 });
    const early = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await early.waitUntil((m) => (m.operationUpdated.event?.progress.current ?? 0) >= 3);
    const late = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await Promise.all([early.done, late.done]);
    const lateUpdates = late.messages.map((m) => m.operationUpdated);
    const snapshot = lateUpdates[0]!;
    expect(snapshot.event).toBeNull();
    expect(snapshot.operation.status).toBe('PROCESSING');
    expect(snapshot.sequence).toBeGreaterThan(2);
    expectConsecutive(lateUpdates.map((u) => u.sequence));
    expect(lateUpdates.at(-1)?.event?.status).toBe('COMPLETED');

    // After the late snapshot, both subscribers saw exactly the same events.
    const earlyAfter = early.messages
      .map((m) => m.operationUpdated)
      .filter((u) => u.sequence > snapshot.sequence)
      .map((u) => u.event);
    expect(lateUpdates.slice(1).map((u) => u.event)).toEqual(earlyAfter);

    // Resubscribing with afterSequence replays exactly the events after it, then completes.
    const k = snapshot.sequence;
    const replay = subscribeWs(
      server.app.url,
      OperationUpdated,
      { id: operation.id, afterSequence: k },
      server.tokens.alice,
    );
    await replay.done;
    const replayed = replay.messages.map((m) => m.operationUpdated.event!.sequence);
    const { data } = await gql(server.app.url, GetOperation, { id: operation.id }, server.tokens.alice);
    const all = data!.operation!.events.map((e) => e.sequence);
    expect(replayed).toEqual(all.filter((s) => s > k));
    expect(replayed.length).toBeGreaterThan(0);
  });

  it('fails on request with the handler error recorded', async () => {
    const operation = await start(server.tokens.alice, { steps: 5, stepMs: 10, failAtStep: 3 });
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.done;
    const last = sub.messages.at(-1)!.operationUpdated;
    // The last message is the FAILED event, or — when the 50 ms run ended before the subscription
    // began — the snapshot of the FAILED operation (no event).
    if (last.event) expect(last.event.status).toBe('FAILED');
    expect(last.operation.status).toBe('FAILED');
    expect(last.operation.error).toEqual({
      code: 'REQUESTED_FAILURE',
      message: 'failed at step 3 of attempt 1 as requested',
    });
  });
});
