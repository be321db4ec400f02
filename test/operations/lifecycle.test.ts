import { describe, expect, it } from 'vitest';
import { graphql } from '../gql/index.ts';
import { gql, subscribeSse, subscribeWs } from '../support/client.ts';
import { GetOperation, OperationTypes, OperationUpdated } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { startSleep } from '../support/operations.ts';

const server = useServer();

const EventsPage = graphql(`
  query EventsPage($id: ID!, $first: Int, $after: String, $afterSequence: Int) {
    operation(id: $id) {
      events(first: $first, after: $after, afterSequence: $afterSequence) {
        totalCount
        edges { cursor node { sequence kind } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`);

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
    const all = data!.operation!.events.edges.map((edge) => edge.node).map((e) => e.sequence);
    expect(replayed).toEqual(all.filter((s) => s > k));
    expect(replayed.length).toBeGreaterThan(0);
  });

  it('pages through an operation’s events with first/after in sequence order, with their total count', async () => {
    const operation = await start(server.tokens.alice, { steps: 3, stepMs: 150 });
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, server.tokens.alice);
    await sub.done;
    const page = async (variables: { first: number; after?: string | null; afterSequence?: number }) => {
      const { data, errors } = await gql(
        server.app.url,
        EventsPage,
        { id: operation.id, ...variables },
        server.tokens.alice,
      );
      expect(errors).toBeUndefined();
      return data!.operation!.events;
    };
    const whole = await page({ first: 1000 });
    const sequences = whole.edges.map((edge) => edge.node.sequence);
    expect(sequences[0]).toBe(1);
    expectConsecutive(sequences);
    expect(whole.totalCount).toBe(sequences.length);
    expect(whole.edges.at(-1)!.node.kind).toBe('COMPLETED');
    expect(whole.pageInfo.hasNextPage).toBe(false);

    const paged: number[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 50; pages += 1) {
      const next = await page({ first: 2, after });
      expect(next.totalCount).toBe(sequences.length);
      paged.push(...next.edges.map((edge) => edge.node.sequence));
      if (!next.pageInfo.hasNextPage) break;
      after = next.pageInfo.endCursor;
    }
    expect(paged).toEqual(sequences);

    // afterSequence narrows the pages and the count alike.
    const late = await page({ first: 1000, afterSequence: 2 });
    expect(late.edges.map((edge) => edge.node.sequence)).toEqual(sequences.filter((s) => s > 2));
    expect(late.totalCount).toBe(sequences.length - 2);
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
