import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { useServer } from '../support/fixtures.ts';
import { REDIS_URL } from '../support/services.ts';
import { CANCEL_BATCH, OPERATION, post, start, startBatch } from './quota-support.ts';

/** Long enough to stay unfinished for the whole test; cancelled at shutdown. */
const LONG = { steps: 1, stepMs: 60_000 };

describe('active operations quota', () => {
  const server = useServer({ quotaMaxActive: 10, quotaStartsPerMinute: 10_000 });

  /** Rows a user owns, by status. */
  async function owned(token: string) {
    const id = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sub as string;
    const rows = await server.db.query<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM "Operation" WHERE "ownerId" = $1 GROUP BY status`,
      [id],
    );
    return { id, total: rows.reduce((sum, row) => sum + row.n, 0), rows };
  }

  it('lets exactly 10 of 100 parallel starts through a limit of 10; the rest are QuotaExceededError', async () => {
    const { app, db } = server;
    const carol = await tokenFor(db.url, 'carol');
    // Another user's running operation, to show it is not affected.
    const bobs = await start(app.url, server.tokens.bob, 'diagnostics.sleep', { steps: 3, stepMs: 200 });
    const results = await Promise.all(
      Array.from({ length: 100 }, () => start(app.url, carol, 'diagnostics.sleep', LONG)),
    );
    const started = results.filter((r) => r.__typename === 'StartOperationSuccess');
    const refused = results.filter((r) => r.__typename === 'QuotaExceededError');
    expect(started).toHaveLength(10);
    expect(refused).toHaveLength(90);
    for (const r of refused) {
      expect(r).toMatchObject({ quota: 'ACTIVE_OPERATIONS', limit: 10, retryAfterSeconds: 5 });
      expect(r.message).toBe('At most 10 unfinished operations per user');
    }
    // Exactly 10 rows and 10 jobs: nothing was created for a refusal.
    expect((await owned(carol)).total).toBe(10);
    const [jobs] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pgboss.job j JOIN "Operation" o ON o."jobId" = j.id
        JOIN "User" u ON u.id = o."ownerId" WHERE u.name = 'carol'`,
    );
    expect(jobs!.n).toBe(10);
    // The server is alive and bob's operation completed meanwhile.
    await vi.waitFor(
      async () => {
        const { operation } = await post(app.url, OPERATION, { id: bobs.operation.id }, server.tokens.bob);
        expect(operation.status).toBe('COMPLETED');
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  it('refuses a batch whose items exceed the quota and creates nothing; the batch itself does not count', async () => {
    const { app, db } = server;
    const dave = await tokenFor(db.url, 'dave');
    const items = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: `i${i}`, type: 'diagnostics.sleep', input: LONG }));
    const tooBig = await startBatch(app.url, dave, { atomic: false, items: items(11) });
    // 11 items can never fit a limit of 10: no point in retrying.
    expect(tooBig).toMatchObject({
      __typename: 'QuotaExceededError',
      quota: 'ACTIVE_OPERATIONS',
      limit: 10,
      retryAfterSeconds: null,
    });
    expect((await owned(dave)).total).toBe(0);

    // 10 items fit exactly (the coordinator does not count) ...
    const fits = await startBatch(app.url, dave, { atomic: false, items: items(10) });
    expect(fits.__typename).toBe('StartBatchSuccess');
    expect((await owned(dave)).total).toBe(11);
    // ... and then one more operation, alone or in a batch, does not.
    const one = await start(app.url, dave, 'diagnostics.echo', { value: 1 });
    expect(one).toMatchObject({ __typename: 'QuotaExceededError', retryAfterSeconds: 5 });
    const more = await startBatch(app.url, dave, { atomic: false, items: items(1) });
    expect(more).toMatchObject({ __typename: 'QuotaExceededError', quota: 'ACTIVE_OPERATIONS' });
    expect((await owned(dave)).total).toBe(11);

    // Cancelling the batch frees its slots.
    await post(app.url, CANCEL_BATCH, { id: fits.batch.id }, dave);
    const after = await start(app.url, dave, 'diagnostics.echo', { value: 1 });
    expect(after.__typename).toBe('StartOperationSuccess');
  });

  it('never refuses an idempotent replay, even with the quota used up', async () => {
    const { app, db } = server;
    const erin = await tokenFor(db.url, 'erin');
    const first = await start(app.url, erin, 'diagnostics.sleep', LONG, 'erin-1');
    expect(first.__typename).toBe('StartOperationSuccess');
    for (let i = 0; i < 9; i += 1) await start(app.url, erin, 'diagnostics.sleep', LONG);
    expect((await start(app.url, erin, 'diagnostics.sleep', LONG)).__typename).toBe('QuotaExceededError');
    const replays = await Promise.all(
      Array.from({ length: 20 }, () => start(app.url, erin, 'diagnostics.sleep', LONG, 'erin-1')),
    );
    for (const replay of replays) {
      expect(replay).toMatchObject({ __typename: 'StartOperationSuccess', replayed: true });
      expect(replay.operation.id).toBe(first.operation.id);
    }
  });
});

describe('active operations quota across two API processes', () => {
  let db: TestDatabase;
  let apis: ServerProcess[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      OPSGRAPH_ROLE: 'api',
      OPSGRAPH_QUOTA_MAX_ACTIVE: '10',
    };
    apis = await Promise.all([spawnServer(env), spawnServer(env)]);
  });
  afterAll(async () => {
    await Promise.all(apis.map((api) => api.stop()));
    await db?.drop();
  });

  it('creates exactly 10 of 100 parallel starts sent half to each process', async () => {
    const grace = await tokenFor(db.url, 'grace');
    // API-only processes: no worker takes the operations, so all stay PENDING.
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => start(apis[i % 2]!.url, grace, 'diagnostics.echo', { value: i })),
    );
    const started = results.filter((r) => r.__typename === 'StartOperationSuccess');
    expect(started).toHaveLength(10);
    expect(results.filter((r) => r.__typename === 'QuotaExceededError')).toHaveLength(90);
    const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM "Operation"');
    expect(row!.n).toBe(10);
  });
});

describe('starts per minute quota', () => {
  const server = useServer({ quotaStartsPerMinute: 5 });

  it('refuses the 6th start in a minute with retryAfterSeconds; inline operations count too', async () => {
    const { app, db } = server;
    const frank = await tokenFor(db.url, 'frank');
    for (let i = 0; i < 4; i += 1) {
      expect((await start(app.url, frank, 'diagnostics.echo', { value: i })).__typename).toBe(
        'StartOperationSuccess',
      );
    }
    // An inline operation (finished when the start returns) is the 5th start.
    const inline = await start(app.url, frank, 'collection.create', { name: 'frank-notes' });
    expect(inline).toMatchObject({ __typename: 'StartOperationSuccess', operation: { status: 'COMPLETED' } });
    const refused = await start(app.url, frank, 'diagnostics.echo', { value: 5 });
    expect(refused).toMatchObject({ __typename: 'QuotaExceededError', quota: 'STARTS_PER_MINUTE', limit: 5 });
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
    const inlineRefused = await start(app.url, frank, 'collection.create', { name: 'frank-more' });
    expect(inlineRefused).toMatchObject({ __typename: 'QuotaExceededError', quota: 'STARTS_PER_MINUTE' });
    // A batch's items count: two items do not fit either; a batch larger than the limit never fits.
    const echo = (id: string) => ({ id, type: 'diagnostics.echo', input: { value: id } });
    const batch = await startBatch(app.url, frank, { items: [echo('a'), echo('b')] });
    expect(batch).toMatchObject({ __typename: 'QuotaExceededError', quota: 'STARTS_PER_MINUTE' });
    const huge = await startBatch(app.url, frank, { items: ['a', 'b', 'c', 'd', 'e', 'f'].map(echo) });
    expect(huge).toMatchObject({ __typename: 'QuotaExceededError', retryAfterSeconds: null });

    const [row] = await db.query<{ n: number; collections: number }>(
      `SELECT (SELECT count(*)::int FROM "Operation" o JOIN "User" u ON u.id = o."ownerId" WHERE u.name = 'frank') AS n,
              (SELECT count(*)::int FROM "Collection" c JOIN "User" u ON u.id = c."ownerId" WHERE u.name = 'frank') AS collections`,
    );
    expect(row).toEqual({ n: 5, collections: 1 });
    // Other users have their own window.
    expect((await start(app.url, server.tokens.bob, 'diagnostics.echo', {})).__typename).toBe(
      'StartOperationSuccess',
    );
  });
});

describe('fair share', () => {
  const server = useServer({ quotaMaxActive: 5000 });

  it("starts another user's operation within 5 s while one user has 2,000 long operations queued", async () => {
    const { app, db, tokens } = server;
    const t0 = Date.now();
    const items = (prefix: string) =>
      Array.from({ length: 1000 }, (_, i) => ({
        id: `${prefix}${i}`,
        type: 'diagnostics.sleep',
        input: LONG,
      }));
    const batches = await Promise.all(
      ['a', 'b'].map((prefix) => startBatch(app.url, tokens.alice, { atomic: false, items: items(prefix) })),
    );
    for (const batch of batches) expect(batch.__typename).toBe('StartBatchSuccess');
    // Wait until alice's items are queued as jobs and every regular worker slot runs one of them.
    await vi.waitFor(
      async () => {
        const [row] = await db.query<{ queued: number; running: number }>(
          `SELECT count(*) FILTER (WHERE status = 'PENDING' AND "jobId" IS NOT NULL)::int AS queued,
                  count(*) FILTER (WHERE status = 'PROCESSING' AND type <> 'batch')::int AS running
             FROM "Operation" WHERE "batchId" IS NOT NULL`,
        );
        expect(row!.queued + row!.running).toBe(2000);
        expect(row!.running).toBeGreaterThanOrEqual(app.resources.config.workerConcurrency);
      },
      { timeout: 30_000, interval: 200 },
    );

    const before = Date.now();
    if (process.env.TEST_VERBOSE) console.log(`2,000 queued after ${before - t0} ms`);
    // The same type, so the same queue and the same worker slots as alice's backlog.
    const bobs = await start(app.url, tokens.bob, 'diagnostics.sleep', { steps: 1, stepMs: 10 });
    expect(bobs.__typename).toBe('StartOperationSuccess');
    await vi.waitFor(
      async () => {
        const { operation } = await post(app.url, OPERATION, { id: bobs.operation.id }, tokens.bob);
        expect(['PROCESSING', 'COMPLETED']).toContain(operation.status);
      },
      { timeout: 5000, interval: 50 },
    );
    const waitedMs = Date.now() - before;
    if (process.env.TEST_VERBOSE) console.log(`bob's operation started after ${waitedMs} ms`);
    expect(waitedMs).toBeLessThan(5000);
    // alice's backlog is left to the server's shutdown (cancelling 2,000 items one by one is slow).
  });
});
