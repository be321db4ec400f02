import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { uuidOf } from '../support/operations.ts';
import { ask, READ, START, settle, start } from '../support/runs.ts';
import { REDIS_URL } from '../support/services.ts';

/**
 * Delayed starts and schedules, on real separate processes: an API process and two worker
 * processes (replaced by two new ones halfway), all with pg-boss's scheduler looking every second.
 * pg-boss fires a schedule at most once a minute, so the cron test waits for three minute ticks.
 */

let db: TestDatabase;
let api: ServerProcess;
let env: Record<string, string>;
const workers: ServerProcess[] = [];
const tokens = {} as Record<'alice' | 'bob' | 'root', string>;
const url = () => api.url;
const spawnWorker = async () => {
  const worker = await spawnServer({ ...env, OPSGRAPH_ROLE: 'worker' });
  workers.push(worker);
  return worker;
};

beforeAll(async () => {
  db = await createTestDatabase();
  env = {
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
    OPSGRAPH_CRON_MONITOR_INTERVAL_SECONDS: '1',
    OPSGRAPH_SCHEDULES_PER_USER: '3',
  };
  api = await spawnServer({ ...env, OPSGRAPH_ROLE: 'api' });
  await Promise.all([spawnWorker(), spawnWorker()]);
  tokens.alice = await tokenFor(db.url, 'alice');
  tokens.bob = await tokenFor(db.url, 'bob');
  tokens.root = await tokenFor(db.url, 'root', true);
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
  await api?.stop();
  await db?.drop();
});

const CREATE = `mutation($input: CreateScheduleInput!) { createSchedule(input: $input) { __typename
  ... on CreateScheduleSuccess { schedule { id name cron timezone type } }
  ... on ValidationError { problems { path message } }
  ... on ScheduleLimitError { limit } } }`;
const DELETE = `mutation($id: ID!) { deleteSchedule(input: { id: $id }) { __typename
  ... on DeleteScheduleSuccess { deletedId } ... on NotFoundError { resource } } }`;
const sleepInput = { steps: 1, stepMs: 0 };

describe('runAt', () => {
  it('starts an operation no earlier than its runAt, PENDING and shown as scheduledFor until then', async () => {
    const runAt = new Date(Date.now() + 2000);
    const data = await ask(url(), tokens.alice, START, {
      input: { type: 'diagnostics.sleep', input: sleepInput, runAt: runAt.toISOString() },
    });
    expect(data.startOperation.operation).toMatchObject({
      status: 'PENDING',
      scheduledFor: runAt.toISOString(),
    });
    const done = await settle(url(), tokens.alice, data.startOperation.operation.id);
    expect(done.status).toBe('COMPLETED');
    expect(new Date(done.startedAt).getTime()).toBeGreaterThanOrEqual(runAt.getTime());
  });

  it('can be cancelled while it waits', async () => {
    const id = await start(url(), tokens.alice, {
      type: 'diagnostics.sleep',
      input: sleepInput,
      runAt: new Date(Date.now() + 60_000).toISOString(),
    });
    const cancelled = await ask(
      url(),
      tokens.alice,
      'mutation($id: ID!) { cancelOperation(input: { id: $id }) { ... on CancelOperationSuccess { operation { status } } } }',
      { id },
    );
    expect(cancelled.cancelOperation.operation.status).toBe('CANCELLED');
  });

  it('keeps its runAt when the reconciler gives it a new job (its job was lost)', async () => {
    const runAt = new Date(Date.now() + 120_000);
    const id = await start(url(), tokens.alice, {
      type: 'diagnostics.sleep',
      input: sleepInput,
      runAt: runAt.toISOString(),
    });
    const [op] = await db.query<{ jobId: string }>(`SELECT "jobId" FROM "Operation" WHERE id = $1`, [
      uuidOf(id),
    ]);
    await db.query(`DELETE FROM pgboss.job WHERE id = $1`, [op!.jobId]);
    await db.query(`UPDATE "Operation" SET "updatedAt" = now() - interval '1 minute' WHERE id = $1`, [
      uuidOf(id),
    ]);
    const requeued = await vi.waitFor(
      async () => {
        const [row] = await db.query<{ status: string; jobId: string; startAfter: Date; state: string }>(
          `SELECT o.status::text AS status, o."jobId", j.start_after AS "startAfter", j.state::text AS state
             FROM "Operation" o JOIN pgboss.job j ON j.id = o."jobId" WHERE o.id = $1`,
          [uuidOf(id)],
        );
        expect(row).toBeDefined();
        expect(row?.jobId).not.toBe(op!.jobId);
        return row!;
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(requeued).toMatchObject({ status: 'PENDING', state: 'created' });
    expect(requeued.startAfter.getTime()).toBe(runAt.getTime());
    await ask(
      url(),
      tokens.alice,
      'mutation($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }',
      { id },
    );
  });

  it('refuses a runAt too far ahead and a priority out of range, creating nothing', async () => {
    const before = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Operation"`);
    const data = await ask(url(), tokens.alice, START, {
      input: {
        type: 'diagnostics.sleep',
        input: sleepInput,
        runAt: new Date(Date.now() + 31 * 86_400_000).toISOString(),
        priority: 10,
      },
    });
    expect(data.startOperation.__typename).toBe('ValidationError');
    expect(data.startOperation.problems.map((p: { path: string[] }) => p.path)).toEqual([
      ['priority'],
      ['runAt'],
    ]);
    const batch = await ask(
      url(),
      tokens.alice,
      `mutation($input: StartBatchInput!) { startBatch(input: $input) { __typename ... on ValidationError { problems { path } } } }`,
      { input: { items: [{ id: 'a', type: 'diagnostics.echo', input: {} }], priority: -1 } },
    );
    expect(batch.startBatch).toEqual({ __typename: 'ValidationError', problems: [{ path: ['priority'] }] });
    expect(await db.query(`SELECT count(*)::int AS n FROM "Operation"`)).toEqual(before);
  });
});

describe('schedules', () => {
  it('refuses an invalid cron or time zone at its path, one firing more than once a minute, and a user past the limit', async () => {
    const base = { name: 'bad', type: 'diagnostics.sleep', input: sleepInput };
    const problems = async (input: Record<string, unknown>) => {
      const data = await ask(url(), tokens.bob, CREATE, { input: { ...base, ...input } });
      expect(data.createSchedule.__typename).toBe('ValidationError');
      return data.createSchedule.problems.map((p: { path: string[] }) => p.path.join('.'));
    };
    expect(await problems({ cron: 'every minute' })).toEqual(['input.cron']);
    expect(await problems({ cron: '61 * * * *' })).toEqual(['input.cron']);
    expect(await problems({ cron: '* * * * *', timezone: 'Mars/Olympus_Mons' })).toEqual(['input.timezone']);
    expect(await problems({ cron: '*/5 * * * * *' })).toEqual(['input.cron']);
    expect(await problems({ cron: '* * * * *', input: { steps: 'x', stepMs: 0 } })).toEqual([
      'input.input.steps',
    ]);
    const ids: string[] = [];
    for (const name of ['one', 'two', 'three']) {
      const data = await ask(url(), tokens.bob, CREATE, {
        input: { ...base, name, cron: '0 3 * * *', timezone: 'Europe/Paris' },
      });
      expect(data.createSchedule.__typename).toBe('CreateScheduleSuccess');
      ids.push(data.createSchedule.schedule.id);
    }
    const fourth = await ask(url(), tokens.bob, CREATE, {
      input: { ...base, name: 'four', cron: '0 3 * * *' },
    });
    expect(fourth.createSchedule).toEqual({ __typename: 'ScheduleLimitError', limit: 3 });
    // Another user's schedule is not found; its owner lists and deletes it.
    expect((await ask(url(), tokens.alice, DELETE, { id: ids[0] })).deleteSchedule.__typename).toBe(
      'NotFoundError',
    );
    const listed = await ask(url(), tokens.bob, '{ schedules { edges { node { id } } } }');
    expect(listed.schedules.edges).toHaveLength(3);
    expect(
      (await ask(url(), tokens.alice, '{ schedules { edges { node { id } } } }')).schedules.edges,
    ).toEqual([]);
    for (const id of ids)
      expect((await ask(url(), tokens.bob, DELETE, { id })).deleteSchedule.__typename).toBe(
        'DeleteScheduleSuccess',
      );
  });

  it('fires once per tick with two worker processes, keeps firing when they are replaced, and stops when deleted', async () => {
    const create = async (token: string, name: string) => {
      const data = await ask(url(), token, CREATE, {
        input: { name, cron: '* * * * *', timezone: 'UTC', type: 'diagnostics.sleep', input: sleepInput },
      });
      expect(data.createSchedule.__typename, JSON.stringify(data)).toBe('CreateScheduleSuccess');
      return data.createSchedule.schedule.id as string;
    };
    const schedule = await create(tokens.alice, 'every-minute');
    // Fires in the same ticks, and goes on after the other is deleted: the event the test waits for.
    const canary = await create(tokens.root, 'canary');
    const perTick = (id: string) =>
      db.query<{ tick: string; n: number }>(
        `SELECT to_char(date_trunc('minute', "createdAt"), 'HH24:MI') AS tick, count(*)::int AS n
             FROM "Operation" WHERE "scheduleId" = $1 GROUP BY 1 ORDER BY 1`,
        [uuidOf(id)],
      );
    const waitForTicks = (id: string, count: number) =>
      vi.waitFor(
        async () => {
          const ticks = await perTick(id);
          expect(ticks.length).toBeGreaterThanOrEqual(count);
          return ticks;
        },
        { timeout: 75_000 * count, interval: 250 },
      );

    await waitForTicks(schedule, 1);
    // A restart: both workers go (SIGKILL), two new ones take over.
    await Promise.all(workers.splice(0).map((worker) => worker.stop('SIGKILL')));
    await Promise.all([spawnWorker(), spawnWorker()]);
    const ticks = await waitForTicks(schedule, 2);
    for (const tick of ticks) expect(tick.n, `operations in tick ${tick.tick}`).toBe(1);

    // Its operations are linked to it, both ways, and they ran.
    const linked = await ask(
      url(),
      tokens.alice,
      'query($id: ID!) { node(id: $id) { ... on Schedule { operations { edges { node { id status schedule { id } } } } } } }',
      { id: schedule },
    );
    const operations = linked.node.operations.edges.map((edge: { node: unknown }) => edge.node);
    expect(operations.length).toBe(ticks.reduce((sum, tick) => sum + tick.n, 0));
    for (const operation of operations) expect(operation.schedule).toEqual({ id: schedule });
    const last = await settle(url(), tokens.alice, operations[0].id);
    expect(last.status).toBe('COMPLETED');

    expect((await ask(url(), tokens.alice, DELETE, { id: schedule })).deleteSchedule.__typename).toBe(
      'DeleteScheduleSuccess',
    );
    const deletedAt = new Date();
    const boss = await db.query(`SELECT key FROM pgboss.schedule WHERE key = $1`, [uuidOf(schedule)]);
    expect(boss).toEqual([]);
    // The canary fires in a tick after the deletion; the deleted schedule does not.
    await vi.waitFor(
      async () => {
        const [row] = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "Operation" WHERE "scheduleId" = $1
                AND date_trunc('minute', "createdAt") > date_trunc('minute', $2::timestamptz)`,
          [uuidOf(canary), deletedAt],
        );
        expect(row?.n).toBeGreaterThan(0);
      },
      { timeout: 75_000, interval: 250 },
    );
    const [after] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "Operation" WHERE "createdAt" > $1 AND "ownerId" = (SELECT id FROM "User" WHERE name = 'alice')`,
      [deletedAt],
    );
    expect(after?.n).toBe(0);
    // What it started stays, no longer linked.
    const kept = await ask(url(), tokens.alice, READ, { id: operations[0].id });
    expect(kept.operation.status).toBe('COMPLETED');
  }, 240_000);
});
