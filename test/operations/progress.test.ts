import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { startTestApp } from '../support/app.ts';
import { gql, subscribeWs, tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { GetOperation, OperationUpdated, StartOperation } from '../support/documents.ts';

let db: TestDatabase;
let throttled: App & { url: string };
let unthrottled: App & { url: string };
let token: string;

beforeAll(async () => {
  db = await createTestDatabase();
  throttled = await startTestApp(db.url, { progressIntervalMs: 100 });
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await throttled?.close();
  await unthrottled?.close();
  await db?.drop();
});

async function runToEnd(url: string, input: Record<string, unknown>) {
  const started = await gql(url, StartOperation, { input: { type: 'diagnostics.sleep', input } }, token);
  const result = started.data?.startOperation;
  if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
  const sub = subscribeWs(url, OperationUpdated, { id: result.operation.id }, token);
  await sub.done;
  const read = await gql(url, GetOperation, { id: result.operation.id }, token);
  return {
    updates: sub.messages.map((m) => m.operationUpdated),
    events: read.data!.operation!.events.edges.map((edge) => edge.node),
  };
}

describe('progress throttling', () => {
  it('persists at most one progress event per interval and never drops the last one before COMPLETED', async () => {
    const { events, updates } = await runToEnd(throttled.url, { steps: 60, stepMs: 5 });
    const progress = events.filter((e) => e.kind === 'PROGRESS');
    // 60 reports over ≥ 300 ms at one write per 100 ms: far fewer than 60 events.
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.length).toBeLessThan(15);
    expect(events.at(-2)).toMatchObject({ kind: 'PROGRESS', progress: { current: 60, total: 60 } });
    expect(events.at(-1)?.kind).toBe('COMPLETED');
    expect(updates.at(-1)?.operation.progress.current).toBe(60);
  });

  it('persists every report when the interval is 0 and writes keep up', async () => {
    await throttled.close();
    unthrottled = await startTestApp(db.url, { progressIntervalMs: 0 });
    const { events } = await runToEnd(unthrottled.url, { steps: 20, stepMs: 30 });
    const currents = events.filter((e) => e.kind === 'PROGRESS').map((e) => e.progress.current);
    expect(currents).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });
});
