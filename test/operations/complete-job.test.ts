import type { Job } from 'pg-boss';
import { describe, expect, it } from 'vitest';
import { createOperation } from '../../src/operations/create.ts';
import { bossQuery, completeMany, startMany } from '../../src/operations/grouped.ts';
import { jobTable } from '../../src/operations/job-row.ts';
import type { JobData } from '../../src/operations/queues.ts';
import { useApiOnlyApp } from '../support/fixtures.ts';

/**
 * The worker completes an operation and its pg-boss job in one statement (completeMany with the
 * job, src/operations/grouped.ts) instead of the operation's statement and then `boss.complete`:
 * the job row must be the one `boss.complete` writes, and only for a job still held under the
 * fetched attempt.
 */

const TYPE = 'diagnostics.sleep';

// API role only: no worker takes the jobs; the test fetches them itself.
const fixture = useApiOnlyApp();

/** A new operation whose job is fetched (active) and which is started (PROCESSING, with a claim). */
async function running(): Promise<{ operationId: string; claimId: string; job: Job<JobData> }> {
  const r = fixture.app.resources;
  const type = r.registry.get(TYPE)!;
  const created = await createOperation(r.db, r.config, await jobTable(r.boss, r.config.bossSchema, TYPE), {
    type,
    input: { steps: 1, stepMs: 1 },
    ownerId: fixture.ownerId,
    idempotencyKey: null,
    inputHash: 'test-hash',
    priority: 0,
  });
  const operationId = created!.operation.id;
  const [job] = await r.boss.fetch<JobData>(TYPE, { batchSize: 1 });
  expect(job?.data.operationId).toBe(operationId);
  const [started] = await startMany(bossQuery(r.boss), 'test-worker', [operationId]);
  return { operationId, claimId: started!.operation.claimId as string, job: job! };
}

const jobRef = (job: Job<JobData>) => ({ name: job.name, id: job.id, retryCount: job.retryCount });

/**
 * Every column of a job that does not differ by nature between two jobs (ids, times, data; the
 * priority, which the second job of one owner gets lower from fair share when it is created).
 */
const COMPARABLE = `name, state, retry_limit, retry_count, retry_delay, retry_backoff, retry_delay_max,
  expire_seconds, deletion_seconds, singleton_key, singleton_on, group_id, group_tier, output, dead_letter,
  policy, heartbeat_on IS NOT NULL AS beating, heartbeat_seconds, blocked, blocking, pending_dependencies, source_name, source_id,
  source_created_on, source_retry_count, source_output, source_root_id, trace_context, upsert_by_key,
  started_on IS NOT NULL AS started, completed_on IS NOT NULL AS completed,
  completed_on >= started_on AS ordered, keep_until - start_after AS kept`;

const jobRow = async (id: string) =>
  (
    await fixture.db.query<Record<string, unknown>>(`SELECT ${COMPARABLE} FROM pgboss.job WHERE id = $1`, [
      id,
    ])
  )[0];

describe('completing an operation and its job in one statement', () => {
  it("writes the job row pg-boss's complete writes, with the operation COMPLETED", async () => {
    const r = fixture.app.resources;
    const ours = await running();
    const theirs = await running();
    const [applied] = await completeMany(
      bossQuery(r.boss),
      [{ operationId: ours.operationId, claimId: ours.claimId, result: { ok: 1 }, job: jobRef(ours.job) }],
      r.config.bossSchema,
    );
    expect(applied?.operation.status).toBe('COMPLETED');
    await r.boss.complete(TYPE, [theirs.job]);
    const row = await jobRow(ours.job.id);
    expect(row).toEqual(await jobRow(theirs.job.id));
    expect(row).toMatchObject({ state: 'completed', completed: true, ordered: true, output: null });
  });

  it('leaves a job that is no longer held under the fetched attempt as it is', async () => {
    const r = fixture.app.resources;
    const stale = await running();
    const before = await jobRow(stale.job.id);
    const [applied] = await completeMany(
      bossQuery(r.boss),
      [
        {
          operationId: stale.operationId,
          claimId: stale.claimId,
          result: undefined,
          job: { ...jobRef(stale.job), retryCount: stale.job.retryCount + 1 },
        },
      ],
      r.config.bossSchema,
    );
    // The operation's change does not depend on the job's: it applied; the job stays active.
    expect(applied?.operation.status).toBe('COMPLETED');
    expect(await jobRow(stale.job.id)).toEqual(before);
    expect(before).toMatchObject({ state: 'active' });
  });

  it("completes the job of an attempt whose result was discarded, as the fetcher's complete did", async () => {
    const r = fixture.app.resources;
    const held = await running();
    const [applied] = await completeMany(
      bossQuery(r.boss),
      // Another claim: the operation is no longer held by this attempt.
      [{ operationId: held.operationId, claimId: crypto.randomUUID(), result: 1, job: jobRef(held.job) }],
      r.config.bossSchema,
    );
    expect(applied).toBeNull();
    const status = await fixture.db.query<{ status: string }>(
      `SELECT status FROM "Operation" WHERE id = $1`,
      [held.operationId],
    );
    expect(status[0]?.status).toBe('PROCESSING');
    expect(await jobRow(held.job.id)).toMatchObject({ state: 'completed' });
  });
});
