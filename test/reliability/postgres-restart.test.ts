import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { gql, subscribeWs, tokenFor } from '../support/client.ts';
import { GetOperation, OperationUpdated, StartTrivial } from '../support/documents.ts';
import { type PostgresCluster, startPostgresCluster } from '../support/outages.ts';
import { REDIS_URL } from '../support/services.ts';

/**
 * A dedicated PostgreSQL cluster is stopped for ~3 s while 100 operations run on a worker process;
 * the api and worker processes must ride it out without a restart.
 */
let cluster: PostgresCluster | undefined;
let api: ServerProcess | undefined;
let worker: ServerProcess | undefined;
let token: string;
/** A second user, never seen by the api before the outage, so its token is not cached. */
let otherToken: string;

const OPERATIONS = 100;
const OUTAGE_MS = 3000;

beforeAll(async () => {
  cluster = await startPostgresCluster();
  const shared = {
    DATABASE_URL: cluster.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
    OPSGRAPH_RECONCILE_INTERVAL_MS: '1000',
    OPSGRAPH_RECONCILE_MIN_AGE_SECONDS: '2',
    OPSGRAPH_WORKER_CONCURRENCY: '20',
  };
  [api, worker] = await Promise.all([
    spawnServer({ ...shared, OPSGRAPH_ROLE: 'api' }),
    spawnServer({ ...shared, OPSGRAPH_ROLE: 'worker' }),
  ]);
  token = await tokenFor(cluster.url, 'alice');
  otherToken = await tokenFor(cluster.url, 'bob');
}, 120_000);

afterAll(async () => {
  await Promise.all([api?.stop(), worker?.stop()]);
  await cluster?.destroy();
});

/** One query on a fresh connection (the cluster goes away and comes back during the test). */
async function query<T extends pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: cluster!.url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

const statusCounts = async () =>
  Object.fromEntries(
    (
      await query<{ status: string; n: number }>(
        'SELECT status::text, count(*)::int AS n FROM "Operation" GROUP BY status ORDER BY status',
      )
    ).map((row) => [row.status, row.n]),
  ) as Record<string, number>;

describe('PostgreSQL restarted in the middle of 100 running operations', () => {
  it('answers SERVICE_UNAVAILABLE quickly during the outage, then every operation ends in exactly one terminal state', async () => {
    const started = await Promise.all(
      Array.from({ length: OPERATIONS }, async () => {
        const response = await gql(
          api!.url,
          StartTrivial,
          { input: { type: 'diagnostics.flaky', input: { steps: 20, stepMs: 100 } } },
          token,
        );
        const result = response.data?.startOperation;
        if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
        return result.operation.id;
      }),
    );
    expect(new Set(started).size).toBe(OPERATIONS);

    // Mid-run: a full wave of 20 is PROCESSING and has made progress.
    await waitFor('20 operations in progress', 30_000, async () => {
      const [row] = await query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "Operation" WHERE status = 'PROCESSING' AND "progressCurrent" >= 3`,
      );
      return row && row.n >= 20 ? row.n : undefined;
    });
    const before = await statusCounts();
    // A subscriber that stays connected through the outage.
    const [watched] = await query<{ id: string }>(
      `SELECT id FROM "Operation" WHERE status = 'PROCESSING' ORDER BY "progressCurrent" LIMIT 1`,
    );
    const watchedId = started.find((id) => Buffer.from(id, 'base64').toString().endsWith(watched!.id))!;
    const sub = subscribeWs(api!.url, OperationUpdated, { id: watchedId }, token);
    await sub.waitFor(1);
    const pids = [api!.child.pid, worker!.child.pid];

    const stoppedAt = Date.now();
    await cluster!.stop();
    console.log(`PostgreSQL stopped (${Date.now() - stoppedAt} ms); before: ${JSON.stringify(before)}`);

    // Requests during the outage fail fast with a retryable error, over HTTP with 503.
    for (const [name, send] of [
      ['query operation', () => gql(api!.url, GetOperation, { id: started[0]! }, token)],
      [
        'mutation startOperation',
        () =>
          gql(
            api!.url,
            StartTrivial,
            { input: { type: 'diagnostics.flaky', input: { steps: 1, stepMs: 1 } } },
            token,
          ),
      ],
    ] as const) {
      const sentAt = Date.now();
      const response = await send();
      const tookMs = Date.now() - sentAt;
      console.log(`${name} during the outage: HTTP ${response.status} in ${tookMs} ms`, response.errors?.[0]);
      expect(tookMs).toBeLessThan(10_000);
      expect(response.status).toBe(503);
      expect(response.errors?.[0]?.extensions).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        retryable: true,
      });
      expect(response.errors?.[0]?.extensions).not.toHaveProperty('http');
      expect(JSON.stringify(response.errors)).not.toMatch(/prisma|ECONNREFUSED|stack/i);
    }

    // A WebSocket connection whose token must be looked up is refused with 1013 "Try Again Later"
    // (which graphql-ws clients retry), not 4403 Forbidden.
    const wsSentAt = Date.now();
    const socket = new WebSocket(api!.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    socket.on('open', () =>
      socket.send(
        JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${otherToken}` } }),
      ),
    );
    const [closeCode, closeReason] = await new Promise<[number, string]>((resolve) =>
      socket.on('close', (code, reason) => resolve([code, String(reason)])),
    );
    console.log(
      `WebSocket connect during the outage: closed ${closeCode} (${closeReason}) in ${Date.now() - wsSentAt} ms`,
    );
    expect(closeCode).toBe(1013);

    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt)));
    const restartedAt = Date.now();
    await cluster!.start();
    const outageMs = restartedAt - stoppedAt;

    // The API answers again without a restart.
    await waitFor('the API to answer', 30_000, async () => {
      const response = await gql(api!.url, GetOperation, { id: started[0]! }, token);
      return response.status === 200 && response.data?.operation ? true : undefined;
    });
    const apiBackMs = Date.now() - restartedAt;

    let counts: Record<string, number> = {};
    await waitFor('every operation to reach a terminal state', 90_000, async () => {
      counts = await statusCounts();
      const unfinished = (counts.PENDING ?? 0) + (counts.PROCESSING ?? 0);
      return unfinished === 0 ? true : undefined;
    });
    const allDoneMs = Date.now() - restartedAt;
    await sub.done;
    expect(sub.errors).toEqual([]);
    const updates = sub.messages.map((m) => m.operationUpdated);
    for (let i = 1; i < updates.length; i += 1)
      expect(updates[i]!.sequence).toBe(updates[i - 1]!.sequence + 1);
    expect(updates.at(-1)!.event?.kind).toBe('COMPLETED');
    // When the worker took new jobs again after the restart.
    const [resumed] = await query<{ ms: number | null }>(
      `SELECT (extract(epoch FROM min("createdAt")) * 1000 - $1)::int AS ms
         FROM "OperationEvent" WHERE kind = 'STARTED' AND "createdAt" > to_timestamp($1 / 1000.0)`,
      [restartedAt],
    );

    const events = await query<{
      id: string;
      status: string;
      sequence: number;
      terminal: number;
      last: number;
    }>(
      `SELECT o.id, o.status::text, o.sequence,
              count(*) FILTER (WHERE e.kind IN ('COMPLETED', 'FAILED', 'CANCELLED'))::int AS terminal,
              max(e.sequence)::int AS last
         FROM "Operation" o JOIN "OperationEvent" e ON e."operationId" = o.id
        GROUP BY o.id`,
    );
    const [repairs] = await query<{ n: number; lost: number }>(
      `SELECT count(*) FILTER (WHERE kind IN ('RETRY_SCHEDULED', 'REQUEUED'))::int AS n,
              count(*) FILTER (WHERE data->'error'->>'code' = 'WORKER_LOST')::int AS lost
         FROM "OperationEvent"`,
    );
    console.log(
      `outage ${outageMs} ms; API answering ${apiBackMs} ms after restart; worker starting jobs ${resumed?.ms} ms after restart; ` +
        `all ${OPERATIONS} terminal ${allDoneMs} ms after restart; ` +
        `final counts ${JSON.stringify(counts)}; retries/requeues ${repairs?.n} (worker lost: ${repairs?.lost})`,
    );

    expect(events).toHaveLength(OPERATIONS);
    expect(counts.PROCESSING ?? 0).toBe(0);
    expect(counts.PENDING ?? 0).toBe(0);
    for (const operation of events) {
      expect(operation.terminal, `terminal events of ${operation.id}`).toBe(1);
      expect(operation.last, `events of ${operation.id} end at its sequence`).toBe(operation.sequence);
    }
    // Nothing failed on purpose and the type retries: everything completes.
    expect(counts.COMPLETED).toBe(OPERATIONS);
    if (process.env.TEST_VERBOSE) console.log(worker!.logs.join('\n'), api!.logs.join('\n'));
    // Neither process restarted.
    expect([api!.child.pid, worker!.child.pid]).toEqual(pids);
    expect(api!.child.exitCode).toBeNull();
    expect(worker!.child.exitCode).toBeNull();
  }, 180_000);
});
