import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startSleep, uuidOf, waitForRow } from '../support/operations.ts';
import { freePort, type PostgresCluster, startPostgresCluster } from '../support/outages.ts';
import { REDIS_URL } from '../support/services.ts';
import { probe, probeUntil } from './probe.ts';

/**
 * /health and /ready of real processes: one on a dedicated PostgreSQL cluster that the test stops
 * and starts (the shared server is never stopped), one held draining by a running operation.
 */
let cluster: PostgresCluster | undefined;
let server: ServerProcess | undefined;

beforeAll(async () => {
  cluster = await startPostgresCluster();
  server = await spawnServer({
    DATABASE_URL: cluster.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
    OPSGRAPH_READY_TIMEOUT_MS: '1000',
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await cluster?.destroy();
});

const isReady = (answer: { status: number }) => answer.status === 200;

describe('/health and /ready on the API port', () => {
  it('/health answers 200 without authentication', async () => {
    const answer = await probe(server!.url, '/health');
    expect(answer).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it('/ready answers 200 with PostgreSQL, Redis and pg-boss checked', async () => {
    const answer = await probeUntil(server!.url, '/ready', isReady, 10_000);
    expect(answer.body).toMatchObject({
      status: 'ready',
      failing: [],
      checks: { postgres: { ok: true }, redis: { ok: true }, pgboss: { ok: true } },
    });
  });

  it('/ready is 503 naming postgres while the database is down, and 200 again after', async () => {
    await probeUntil(server!.url, '/ready', isReady, 10_000);
    await cluster!.stop();
    try {
      const down = await probeUntil(server!.url, '/ready', (answer) => answer.status === 503, 10_000);
      expect(down.body.status).toBe('unavailable');
      expect(down.body.failing).toContain('postgres');
      expect(down.body.checks?.postgres?.ok).toBe(false);
      expect(down.body.checks?.redis?.ok).toBe(true);
      // The process itself is alive, and says so without touching the database.
      expect(await probe(server!.url, '/health')).toEqual({ status: 200, body: { status: 'ok' } });
    } finally {
      await cluster!.start();
    }
    const up = await probeUntil(server!.url, '/ready', isReady, 30_000);
    expect(up.body).toMatchObject({ status: 'ready', failing: [] });
  });
});

describe('a draining process', () => {
  let db: TestDatabase | undefined;
  let draining: ServerProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await draining?.stop('SIGKILL');
    await db?.drop();
  });

  it('answers 503 on /ready from SIGTERM on, while /health stays 200', async () => {
    draining = await spawnServer({
      DATABASE_URL: db!.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      // Long enough that the drain outlasts the polling below; the operation ends it sooner.
      OPSGRAPH_SHUTDOWN_GRACE_MS: '60000',
    });
    await probeUntil(draining.url, '/ready', isReady, 10_000);
    const token = await tokenFor(db!.url, 'alice');
    // 60 × 100 ms: still running when SIGTERM arrives and for seconds after.
    const operation = await startSleep(draining.url, token, { steps: 60, stepMs: 100 });
    await waitForRow(db!, uuidOf(operation.id), (row) => row.status === 'PROCESSING', 10_000);

    draining.child.kill('SIGTERM');
    const answer = await probeUntil(draining.url, '/ready', (a) => a.status === 503, 3000);
    expect(answer.body).toMatchObject({ status: 'draining' });
    expect(await probe(draining.url, '/health')).toEqual({ status: 200, body: { status: 'ok' } });
    // Still draining, not exited: the operation holds it.
    expect(draining.child.exitCode).toBeNull();
    expect(await draining.exited).toBe(0);
    expect((await db!.query<{ status: string }>('SELECT status FROM "Operation"'))[0]?.status).toBe(
      'COMPLETED',
    );
  }, 30_000);

  it('a worker-only process serves /health and /ready on OPSGRAPH_WORKER_PORT', async () => {
    const port = await freePort();
    const worker = await spawnServer({
      DATABASE_URL: db!.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      OPSGRAPH_ROLE: 'worker',
      OPSGRAPH_WORKER_PORT: String(port),
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      expect(await probe(base, '/health')).toEqual({ status: 200, body: { status: 'ok' } });
      const ready = await probeUntil(base, '/ready', isReady, 10_000);
      expect(ready.body.checks).toMatchObject({
        postgres: { ok: true },
        pgboss: { ok: true },
        redis: { ok: true },
      });
      const other = await fetch(`${base}/graphql`);
      expect(other.status).toBe(404);
      await other.body?.cancel();
    } finally {
      expect(await worker.stop()).toBe(0);
    }
  });
});
