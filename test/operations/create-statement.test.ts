import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createOperation } from '../../src/operations/create.ts';
import { jobTable } from '../../src/operations/job-row.ts';
import { jobOptions } from '../../src/operations/queues.ts';
import { useApiOnlyApp } from '../support/fixtures.ts';

/**
 * createOperation (src/operations/create.ts) writes a start in one statement with its own pg-boss
 * job row (src/operations/job-row.ts): that row and its NOTIFY must be the ones pg-boss's own
 * send writes, and a failure anywhere in the statement must leave nothing.
 */

const TYPE = 'diagnostics.sleep';

// API role only: no worker takes the jobs, so they stay as inserted.
const fixture = useApiOnlyApp();

function spec(priority = 0) {
  const type = fixture.app.resources.registry.get(TYPE);
  if (!type) throw new Error(`${TYPE} is not registered`);
  const input = { steps: 1, stepMs: 1 };
  return { type, input, ownerId: fixture.ownerId, idempotencyKey: null, inputHash: 'test-hash', priority };
}

const create = async (s: ReturnType<typeof spec>) => {
  const { resources: r } = fixture.app;
  return createOperation(r.db, r.config, await jobTable(r.boss, r.config.bossSchema, s.type.name), s);
};

/** Every column of a job that does not differ by nature between two jobs (ids, times, data). */
const COMPARABLE = `name, priority, state, retry_limit, retry_count, retry_delay, retry_backoff, retry_delay_max,
  expire_seconds, deletion_seconds, singleton_key, singleton_on, group_id, group_tier, started_on, completed_on,
  output, dead_letter, policy, heartbeat_on, heartbeat_seconds, blocked, blocking, pending_dependencies,
  source_name, source_id, source_created_on, source_retry_count, source_output, source_root_id, trace_context,
  upsert_by_key, keep_until - start_after AS kept, start_after - created_on AS delay`;

describe('starting an operation in one statement', () => {
  it("writes the job row pg-boss's send writes with the same options", async () => {
    const type = fixture.app.resources.registry.get(TYPE)!;
    const created = await create(spec(0));
    // The fair-share rank of alice's first operation is 0, so the job's priority is the client's: 0.
    const sentId = await fixture.app.resources.boss.send(
      TYPE,
      { operationId: created!.operation.id },
      { id: crypto.randomUUID(), ...jobOptions(type.policy, 0) },
    );
    const rows = await fixture.db.query<Record<string, unknown>>(
      `SELECT ${COMPARABLE}, data FROM pgboss.job WHERE id = ANY($1::uuid[]) ORDER BY id = $2::uuid`,
      [[created!.operation.jobId, sentId], created!.operation.jobId],
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]).toEqual(rows[1]);
    expect(rows[0]).toMatchObject({
      name: TYPE,
      state: 'created',
      data: { operationId: created!.operation.id },
    });
  });

  it("wakes workers on pg-boss's own channel, as its send does", async () => {
    const listener = new pg.Client({ connectionString: fixture.db.url });
    await listener.connect();
    try {
      const heard: string[] = [];
      listener.on('notification', (message) => heard.push(`${message.channel} ${message.payload}`));
      const [{ channel }] = (
        await listener.query<{ channel: string }>(
          `SELECT 'pgboss_' || left(encode(sha224($1::bytea), 'hex'), 24) AS channel`,
          [fixture.app.resources.config.bossSchema],
        )
      ).rows as [{ channel: string }];
      await listener.query(`LISTEN "${channel}"`);
      await fixture.app.resources.boss.send(TYPE, { operationId: crypto.randomUUID() });
      await expect.poll(() => heard).toEqual([`${channel} ${TYPE}`]);
      await create(spec());
      await expect.poll(() => heard).toEqual([`${channel} ${TYPE}`, `${channel} ${TYPE}`]);
    } finally {
      await listener.end();
    }
  });

  it('a failure after the operation row is written leaves no row, event, audit, credits or job', async () => {
    const totals = async () =>
      (
        await fixture.db.query<Record<string, number>>(
          `SELECT (SELECT count(*)::int FROM "Operation") AS operations,
                  (SELECT count(*)::int FROM "OperationEvent") AS events,
                  (SELECT count(*)::int FROM "AuditEvent") AS audit,
                  (SELECT count(*)::int FROM "CreditLedger") AS ledger,
                  (SELECT balance::int FROM "CreditAccount" WHERE "userId" = $1) AS balance,
                  (SELECT count(*)::int FROM pgboss.job) AS jobs`,
          [fixture.ownerId],
        )
      )[0]!;
    const before = await totals();
    // A type whose queue does not exist: the job's insert, last in the statement, fails on its foreign key.
    const s = spec();
    const r = fixture.app.resources;
    const table = await jobTable(r.boss, r.config.bossSchema, TYPE);
    const missing = { ...s, type: { ...s.type, name: 'no.such.queue' } };
    await expect(createOperation(r.db, r.config, table, missing)).rejects.toThrow(/foreign key|q_fkey/);
    expect(await totals()).toEqual(before);
  });
});
