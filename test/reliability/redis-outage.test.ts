import { setTimeout as sleep } from 'node:timers/promises';
import { type ExecutionResult, print } from 'graphql';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationUpdatedSubscription } from '../gql/graphql.ts';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { gql, tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { GetOperation, OperationUpdated, StartOperation } from '../support/documents.ts';
import { type RedisServer, startRedisServer } from '../support/outages.ts';

/**
 * A dedicated redis-server is stopped for ~2 s while a worker process (B) runs an operation that a
 * subscriber watches through an api process (A): the subscriber keeps receiving every event in
 * order, from the database while Redis is down and live again after it returns.
 */
let redis: RedisServer | undefined;
let db: TestDatabase;
let api: ServerProcess | undefined;
let worker: ServerProcess | undefined;
let token: string;

beforeAll(async () => {
  redis = await startRedisServer();
  db = await createTestDatabase();
  const shared = { DATABASE_URL: db.url, REDIS_URL: redis.url, OPSGRAPH_CHANNEL_PREFIX: uniquePrefix() };
  [api, worker] = await Promise.all([
    spawnServer({ ...shared, OPSGRAPH_ROLE: 'api' }),
    spawnServer({ ...shared, OPSGRAPH_ROLE: 'worker' }),
  ]);
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await Promise.all([api?.stop(), worker?.stop()]);
  await redis?.stop();
  await db?.drop();
});

type Update = OperationUpdatedSubscription['operationUpdated'];

/** A graphql-ws subscriber that records when each message arrived. */
function watch(operationId: string) {
  const received: { at: number; update: Update }[] = [];
  const errors: unknown[] = [];
  const client = createClient({
    url: api!.url.replace(/^http/, 'ws'),
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  const done = new Promise<void>((resolve) => {
    client.subscribe<OperationUpdatedSubscription>(
      { query: print(OperationUpdated), variables: { id: operationId } },
      {
        next: (result: ExecutionResult<OperationUpdatedSubscription>) => {
          if (result.errors) errors.push(result.errors);
          else received.push({ at: Date.now(), update: result.data!.operationUpdated });
        },
        error: (error) => {
          errors.push(error);
          resolve();
        },
        complete: resolve,
      },
    );
  }).finally(() => client.dispose());
  return { received, errors, done };
}

async function waitUntil(what: string, timeoutMs: number, check: () => boolean) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Checks one subscriber's messages: a snapshot, then every later event once, in order. */
async function expectComplete(received: { update: Update }[], operationId: string) {
  const updates = received.map((r) => r.update);
  expect(updates[0]!.event).toBeNull();
  for (let i = 1; i < updates.length; i += 1) {
    expect(updates[i]!.sequence, `message ${i}`).toBe(updates[i - 1]!.sequence + 1);
    expect(updates[i]!.event!.sequence).toBe(updates[i]!.sequence);
  }
  expect(updates.at(-1)!.event?.kind).toBe('COMPLETED');
  const { data } = await gql(api!.url, GetOperation, { id: operationId }, token);
  const stored = data!
    .operation!.events.edges.map((edge) => edge.node)
    .filter((e) => e.sequence > updates[0]!.sequence);
  expect(updates.slice(1).map((u) => u.event!.sequence)).toEqual(stored.map((e) => e.sequence));
}

describe('Redis stopped and restarted while an operation runs', () => {
  it('a subscriber on another process receives every event in order with no gap, then live fan-out resumes', async () => {
    const steps = 50;
    const response = await gql(
      api!.url,
      StartOperation,
      { input: { type: 'diagnostics.sleep', input: { steps, stepMs: 120 } } },
      token,
    );
    const result = response.data?.startOperation;
    if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
    const operationId = result.operation.id;
    const first = watch(operationId);
    await waitUntil('5 progress events', 15_000, () =>
      first.received.some((r) => r.update.event?.kind === 'PROGRESS' && r.update.event.progress.current >= 5),
    );

    const stoppedAt = Date.now();
    await redis!.stop();
    // A subscription started while Redis is down still gets its snapshot at once.
    await sleep(500);
    const subscribedAt = Date.now();
    const second = watch(operationId);
    await waitUntil(
      'the snapshot of a subscription started during the outage',
      5000,
      () => second.received.length > 0,
    );
    const snapshotMs = Date.now() - subscribedAt;
    await sleep(Math.max(0, 2000 - (Date.now() - stoppedAt)));
    const restartedAt = Date.now();
    await redis!.start();

    await Promise.all([first.done, second.done]);
    expect(first.errors).toEqual([]);
    expect(second.errors).toEqual([]);
    await expectComplete(first.received, operationId);
    await expectComplete(second.received, operationId);

    // Not silent during the outage: events kept arriving (read from the database).
    const during = first.received.filter((r) => r.at > stoppedAt && r.at < restartedAt);
    const gaps = first.received.slice(1).map((r, i) => r.at - first.received[i]!.at);
    const longestGap = Math.max(...gaps);
    // Live again afterwards: events well after the restart arrive within milliseconds of their commit.
    const rows = await db.query<{ sequence: number; at: number }>(
      'SELECT sequence, (extract(epoch FROM "createdAt") * 1000)::float8 AS at FROM "OperationEvent" WHERE "operationId" = $1',
      [Buffer.from(operationId, 'base64').toString().split(':')[1]],
    );
    expect(rows.length).toBeGreaterThan(steps);
    const commitTime = new Map(rows.map((row) => [row.sequence, row.at]));
    const latency = (from: number, to: number) =>
      first.received
        .filter((r) => r.update.event && r.at > from && r.at < to)
        .map((r) => r.at - commitTime.get(r.update.sequence)!)
        .sort((a, b) => a - b);
    const median = (values: number[]) => values[Math.floor(values.length / 2)] ?? Number.NaN;
    const outageLatency = latency(stoppedAt, restartedAt);
    const liveLatency = latency(restartedAt + 1500, Number.POSITIVE_INFINITY);
    console.log(
      `Redis down ${restartedAt - stoppedAt} ms; subscriber received ${first.received.length} messages ` +
        `(${during.length} during the outage); longest gap between messages ${longestGap} ms; ` +
        `median commit→client latency during the outage ${median(outageLatency)} ms, ` +
        `after recovery ${median(liveLatency)} ms; snapshot for a subscription made during the outage in ${snapshotMs} ms`,
    );

    if (process.env.TEST_VERBOSE) console.log(api!.logs.join('\n'), worker!.logs.join('\n'));
    expect(during.length).toBeGreaterThan(3);
    expect(longestGap).toBeLessThan(1500);
    expect(liveLatency.length).toBeGreaterThan(5);
    expect(median(liveLatency)).toBeLessThan(100);
    expect(snapshotMs).toBeLessThan(2000);
    expect(api!.child.exitCode).toBeNull();
    expect(worker!.child.exitCode).toBeNull();
  });
});
