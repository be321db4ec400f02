import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { startTestApp } from '../support/app.ts';
import { startBatchOk } from '../support/batches.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { runDoctor } from '../support/doctor.ts';
import { eventsOf, operationRow, startOperation, uuidOf, waitForRow } from '../support/operations.ts';

/** An API-only app: operations it starts stay PENDING with their job, since nothing runs them. */
let db: TestDatabase;
let api: App & { url: string };
let token: string;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await startTestApp(db.url, { role: 'api' });
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await api?.close();
  await db?.drop();
});

/** Runs `npm run doctor -- --fix` (these tests are about repairs) against the test database. */
const doctor = (timeoutMs = 60_000) => runDoctor(db, ['--fix'], {}, timeoutMs);

const start = (type: string) => startOperation(api.url, token, type, { steps: 1, stepMs: 1 });

/** Makes the operation look like a crashed worker's: PROCESSING with a claim, and no job left. */
async function orphanAsProcessing(uuid: string) {
  await db.query(
    `UPDATE "Operation" SET status = 'PROCESSING', "claimId" = gen_random_uuid(), attempt = 1,
            "workerId" = 'crashed-worker', "startedAt" = now() - interval '1 minute',
            "updatedAt" = now() - interval '1 minute'
      WHERE id = $1`,
    [uuid],
  );
  await deleteJob(uuid);
}

async function deleteJob(uuid: string) {
  const deleted = await db.query(
    `DELETE FROM pgboss.job WHERE id = (SELECT "jobId" FROM "Operation" WHERE id = $1) RETURNING id`,
    [uuid],
  );
  expect(deleted).toHaveLength(1);
}

const jobOf = async (jobId: string | null) =>
  (
    await db.query<{ state: string; name: string; startAfter: Date }>(
      `SELECT state::text AS state, name, start_after AS "startAfter" FROM pgboss.job WHERE id = $1`,
      [jobId],
    )
  )[0];

const line = (stdout: string, uuid: string) => stdout.split('\n').find((l) => l.includes(uuid));

// Each doctor run is a process that starts, migrates and connects: seconds on a busy machine.
describe('npm run doctor -- --fix: orphaned operations', { timeout: 240_000 }, () => {
  it('repairs operations left PROCESSING whose job no longer exists, and a second run finds nothing', async () => {
    const sleepOp = await start('diagnostics.sleep');
    const flakyOp = await start('diagnostics.flaky');
    const oldFlakyJob = (await operationRow(db, flakyOp.uuid)).jobId;
    await orphanAsProcessing(sleepOp.uuid);
    await orphanAsProcessing(flakyOp.uuid);

    const began = Date.now();
    const first = await doctor();
    console.log(`doctor run: ${Date.now() - began} ms\n${first.stdout.trim()}`);
    expect(first.code, first.stderr).toBe(1);
    expect(line(first.stdout, sleepOp.uuid)).toMatch(
      /^fixed {2}orphaned-operation {2}Operation \S+ {2}diagnostics\.sleep PROCESSING: job missing → FAILED$/,
    );
    expect(line(first.stdout, flakyOp.uuid)).toMatch(
      /^fixed {2}orphaned-operation {2}Operation \S+ {2}diagnostics\.flaky PROCESSING: job missing → RETRY_SCHEDULED$/,
    );
    expect(first.stdout).toContain('doctor: 2 problem(s) found, 2 fixed, 0 not fixed');

    // No retries: FAILED, worker lost.
    const failed = await operationRow(db, sleepOp.uuid);
    expect(failed).toMatchObject({ status: 'FAILED', claimId: null, workerId: null });
    expect(failed.error?.code).toBe('WORKER_LOST');
    const sleepEvents = await eventsOf(db, sleepOp.uuid);
    expect(sleepEvents.at(-1)).toMatchObject({ kind: 'FAILED', data: { error: { code: 'WORKER_LOST' } } });

    // With retries: PENDING again with a new job for attempt 2, due after the 1 s retry delay.
    const requeued = await operationRow(db, flakyOp.uuid);
    expect(requeued).toMatchObject({ status: 'PENDING', attempt: 1, claimId: null, workerId: null });
    expect(requeued.error?.code).toBe('WORKER_LOST');
    expect(requeued.nextAttemptAt).not.toBeNull();
    expect(requeued.jobId).not.toBe(oldFlakyJob);
    const job = await jobOf(requeued.jobId);
    expect(job).toMatchObject({ state: 'created', name: 'diagnostics.flaky' });
    expect(job!.startAfter.getTime()).toBe(requeued.nextAttemptAt!.getTime());
    const flakyEvents = await eventsOf(db, flakyOp.uuid);
    expect(flakyEvents.at(-1)).toMatchObject({
      kind: 'RETRY_SCHEDULED',
      status: 'PENDING',
      data: { attempt: 1, error: { code: 'WORKER_LOST' } },
    });

    const second = await doctor();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.trim()).toBe('doctor: 0 problem(s) found, 0 fixed, 0 not fixed');
    // The second pass changed nothing.
    expect(await eventsOf(db, flakyOp.uuid)).toEqual(flakyEvents);
    expect(await eventsOf(db, sleepOp.uuid)).toEqual(sleepEvents);
  });

  it('requeues a PENDING operation whose job was deleted, and the new job runs', async () => {
    const op = await start('diagnostics.sleep');
    const before = await operationRow(db, op.uuid);
    await deleteJob(op.uuid);

    const run = await doctor();
    expect(run.code, run.stderr).toBe(1);
    expect(line(run.stdout, op.uuid)).toMatch(
      /^fixed {2}orphaned-operation {2}Operation \S+ {2}diagnostics\.sleep PENDING: job missing → REQUEUED$/,
    );
    expect(run.stdout).toContain('doctor: 1 problem(s) found, 1 fixed, 0 not fixed');

    const after = await operationRow(db, op.uuid);
    expect(after.status).toBe('PENDING');
    expect(after.attempt).toBe(0);
    expect(after.jobId).not.toBeNull();
    expect(after.jobId).not.toBe(before.jobId);
    expect(await jobOf(after.jobId)).toMatchObject({ state: 'created', name: 'diagnostics.sleep' });
    const events = await eventsOf(db, op.uuid);
    expect(events.map((e) => e.kind)).toEqual(['CREATED', 'REQUEUED']);
    expect(events[1]!.status).toBe('PENDING');

    // A worker picks up the new job and the operation completes.
    const worker = await startTestApp(db.url, { role: 'worker' });
    try {
      const done = await waitForRow(db, op.uuid, (row) => row.status === 'COMPLETED', 15_000, 'COMPLETED');
      expect(done.result).toMatchObject({ steps: 1, attempt: 1 });
    } finally {
      await worker.close();
    }
  });

  it('exits 2 and says NOT FIXED when a repair fails, and fixes it on a later run', async () => {
    const op = await start('diagnostics.sleep');
    await orphanAsProcessing(op.uuid);
    // A real database fault: every event insert for this operation is refused.
    await db.query(`CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN RAISE EXCEPTION 'event store unavailable'; END $$`);
    await db.query(`CREATE TRIGGER refuse_event BEFORE INSERT ON "OperationEvent" FOR EACH ROW
      WHEN (NEW."operationId" = '${op.uuid}'::uuid) EXECUTE FUNCTION refuse_event()`);
    let run: Awaited<ReturnType<typeof doctor>>;
    try {
      run = await doctor();
    } finally {
      await db.query('DROP TRIGGER refuse_event ON "OperationEvent"; DROP FUNCTION refuse_event()');
    }
    expect(run.code).toBe(2);
    expect(line(run.stdout, op.uuid)).toMatch(
      /^NOT FIXED {2}orphaned-operation .*PROCESSING: job missing → could not repair: /,
    );
    expect(run.stdout).toContain('doctor: 1 problem(s) found, 0 fixed, 1 not fixed');
    expect(run.stdout + run.stderr).not.toMatch(/\n\s+at /);
    expect((await operationRow(db, op.uuid)).status).toBe('PROCESSING');

    const again = await doctor();
    expect(again.code, again.stderr).toBe(1);
    expect(again.stdout).toContain('doctor: 1 problem(s) found, 1 fixed, 0 not fixed');
    expect(await operationRow(db, op.uuid)).toMatchObject({
      status: 'FAILED',
      error: { code: 'WORKER_LOST' },
    });
  });

  it('skips the waiting items of a batch that ended without starting them', async () => {
    const { id } = await startBatchOk(api.url, token, {
      atomic: false,
      items: [
        { id: 'first', type: 'diagnostics.echo', input: { value: 1 } },
        {
          id: 'second',
          type: 'diagnostics.echo',
          input: { value: '$ref:first.value' },
          dependsOn: ['first'],
        },
      ],
    });
    const batch = uuidOf(id);
    // As if its coordinator had used up its attempts before starting anything.
    await db.query(
      `UPDATE "Operation" SET status = 'FAILED', "completedAt" = now(), "updatedAt" = now() - interval '1 minute'
        WHERE id = $1`,
      [batch],
    );
    const run = await doctor();
    expect(run.code, run.stderr).toBe(1);
    // Both items, and the batch's job (its operation ended while it waited).
    expect(run.stdout).toContain('doctor: 3 problem(s) found, 3 fixed, 0 not fixed');
    expect(run.stdout).toMatch(
      /^fixed {2}orphaned-job {2}job batch\/\S+ {2}created, but its operation \S+ is FAILED → job cancelled$/m,
    );
    const items = await db.query<{ status: string; error: { code: string; message: string } }>(
      `SELECT status::text AS status, error FROM "Operation" WHERE "batchId" = $1`,
      [batch],
    );
    expect(items).toEqual([
      {
        status: 'CANCELLED',
        error: { code: 'SKIPPED', message: 'its batch ended (FAILED) before it started' },
      },
      {
        status: 'CANCELLED',
        error: { code: 'SKIPPED', message: 'its batch ended (FAILED) before it started' },
      },
    ]);
    const again = await doctor();
    expect(again.stdout).toContain('doctor: 0 problem(s) found');
  });

  it('releases a collection left BUSY by an operation that ended without releasing it', async () => {
    const created = await startOperation(api.url, token, 'collection.create', { name: 'left-busy' });
    const collectionId = (created.operation.result as { collectionUuid: string }).collectionUuid;
    const writer = await startOperation(api.url, token, 'collection.removeSource', {
      collectionId,
      source: 'nothing',
    });
    // As if its worker had marked the collection and died, and a repair had failed the operation.
    await db.query(
      `UPDATE "Operation" SET status = 'FAILED', "completedAt" = now(), "updatedAt" = now() - interval '1 minute'
        WHERE id = $1`,
      [writer.uuid],
    );
    await db.query(`UPDATE "Collection" SET status = 'BUSY', "busyOperationId" = $2 WHERE id = $1`, [
      collectionId,
      writer.uuid,
    ]);
    const run = await doctor();
    expect(run.code, run.stderr).toBe(1);
    expect(line(run.stdout, writer.uuid)).toMatch(
      /left BUSY by an operation that ended → collection INCOMPLETE/,
    );
    const [row] = await db.query(
      `SELECT status::text AS status, "busyOperationId", "statusMessage" FROM "Collection" WHERE id = $1`,
      [collectionId],
    );
    expect(row).toEqual({
      status: 'INCOMPLETE',
      busyOperationId: null,
      statusMessage: 'collection.removeSource ended FAILED without finishing; committed batches were kept',
    });
  });

  it('without --fix only reports what it would do, changes nothing, and exits 1', async () => {
    const op = await start('diagnostics.sleep');
    await deleteJob(op.uuid);
    const before = await operationRow(db, op.uuid);
    const events = await eventsOf(db, op.uuid);

    const report = await runDoctor(db);
    expect(report.code, report.stderr).toBe(1);
    expect(line(report.stdout, op.uuid)).toBe(
      `found  orphaned-operation  Operation ${op.uuid}  diagnostics.sleep PENDING: job missing → REQUEUED with a new job`,
    );
    expect(report.stdout).toContain('doctor: 1 problem(s) found, 1 fixable with --fix, 0 not fixable');
    expect(await operationRow(db, op.uuid)).toEqual(before);
    expect(await eventsOf(db, op.uuid)).toEqual(events);

    expect((await doctor()).code).toBe(1);
    expect((await operationRow(db, op.uuid)).jobId).not.toBe(before.jobId);
    const clean = await runDoctor(db);
    expect(clean.code, clean.stdout).toBe(0);
  });
});
