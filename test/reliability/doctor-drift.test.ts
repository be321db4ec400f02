import type { QueryResultRow } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import type { Exited } from '../support/app.ts';
import { startTestApp } from '../support/app.ts';
import { startBatchOk } from '../support/batches.ts';
import { tokenFor } from '../support/client.ts';
import { createCollection } from '../support/collections.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { lineAbout, runDoctor, summaryOf } from '../support/doctor.ts';
import { operationRow, startOperation, uuidOf } from '../support/operations.ts';

/**
 * Every kind of drift beyond orphaned operations, each made with direct SQL in one database; then
 * `npm run doctor` (report only), `--fix`, and a last run. Each doctor run is a process that
 * starts, migrates and connects (seconds on a busy machine), so the runs are shared and each kind
 * has its own test of what they printed and changed.
 */
let db: TestDatabase;
let api: App & { url: string };
const drift: Record<string, string> = {};
const before: Record<string, unknown> = {};
const runs: { guarded?: Exited; report?: Exited; fix?: Exited; last?: Exited } = {};

const one = async <T extends QueryResultRow>(sql: string, params: unknown[] = []) =>
  (await db.query<T>(sql, params))[0] as T;
const jobState = (id: string) =>
  one<{ state: string }>(`SELECT state::text AS state FROM pgboss.job WHERE id = $1`, [id]);
const account = (userId: string) =>
  one<{ balance: string; reserved: string }>(
    `SELECT balance::text AS balance, reserved::text AS reserved FROM "CreditAccount" WHERE "userId" = $1`,
    [userId],
  );
const userId = async (name: string) =>
  (await one<{ id: string }>(`SELECT id FROM "User" WHERE name = $1`, [name])).id;

beforeAll(async () => {
  db = await createTestDatabase();
  // API only: started operations stay PENDING with their job, since nothing runs them.
  api = await startTestApp(db.url, { role: 'api' });
  const alice = await tokenFor(db.url, 'alice');
  await tokenFor(db.url, 'carol');
  await tokenFor(db.url, 'dave');
  const sleep = () => startOperation(api.url, alice, 'diagnostics.sleep', { steps: 1, stepMs: 1 });

  // orphaned-job: a job whose operation has finished, and one whose operation is gone.
  const finished = await sleep();
  await db.query(
    `UPDATE "Operation" SET status = 'COMPLETED', "completedAt" = now(), "updatedAt" = now() - interval '1 minute' WHERE id = $1`,
    [finished.uuid],
  );
  drift.finishedJob = (await operationRow(db, finished.uuid)).jobId!;
  const gone = await sleep();
  drift.goneJob = (await operationRow(db, gone.uuid)).jobId!;
  await db.query(`DELETE FROM "Operation" WHERE id = $1`, [gone.uuid]);

  // operation-sequence: one behind its last event (fixable), one ahead of it (events missing).
  drift.behind = (await sleep()).uuid;
  await db.query(`UPDATE "Operation" SET sequence = 0 WHERE id = $1`, [drift.behind]);
  drift.ahead = (await sleep()).uuid;
  await db.query(`UPDATE "Operation" SET sequence = 5 WHERE id = $1`, [drift.ahead]);

  // collection-counts: counts that no rows back.
  drift.collection = uuidOf(await createCollection(api.url, alice, { name: 'miscounted' }));
  await db.query(
    `UPDATE "Collection" SET "documentCount" = 7, "chunkCount" = 21, status = 'READY' WHERE id = $1`,
    [drift.collection],
  );

  // batch-outcome: a batch that ended COMPLETED with both items, but recorded one.
  const batch = await startBatchOk(api.url, alice, {
    atomic: false,
    items: [
      { id: 'a', type: 'diagnostics.echo', input: { value: 1 } },
      { id: 'b', type: 'diagnostics.echo', input: { value: 2 } },
    ],
  });
  drift.batch = uuidOf(batch.id);
  const counts = {
    PENDING: 0,
    RUNNING: 0,
    COMPLETED: 1,
    FAILED: 0,
    SKIPPED: 0,
    CANCELLED: 0,
    ROLLED_BACK: 0,
  };
  await db.query(
    `UPDATE "Operation" SET status = 'COMPLETED', result = '{"value": 1}', "completedAt" = now() WHERE "batchId" = $1`,
    [drift.batch],
  );
  await db.query(
    `UPDATE "Operation" SET status = 'COMPLETED', "completedAt" = now(), result = $2 WHERE id = $1`,
    [drift.batch, JSON.stringify({ status: 'COMPLETED', counts, failed: [], items: {} })],
  );
  // The batch's job, and its items' (ready at submission, they were queued with it).
  await db.query(
    `DELETE FROM pgboss.job WHERE id IN (SELECT "jobId" FROM "Operation" WHERE id = $1 OR "batchId" = $1)`,
    [drift.batch],
  );

  // credit-ledger: carol's account off its intact ledger (fixable); dave's ledger itself broken.
  drift.carol = await userId('carol');
  before.carol = await account(drift.carol);
  await db.query(`UPDATE "CreditAccount" SET balance = balance + 5 WHERE "userId" = $1`, [drift.carol]);
  drift.dave = await userId('dave');
  await db.query(
    `INSERT INTO "CreditLedger" ("userId", kind, amount, "balanceAfter", reason)
     SELECT "userId", 'GRANT', 5, balance, 'a grant whose balance never moved' FROM "CreditAccount" WHERE "userId" = $1`,
    [drift.dave],
  );
  before.dave = await account(drift.dave);

  before.rows = await db.query(`SELECT id, status, sequence, result FROM "Operation" ORDER BY id`);
  before.collections = await db.query(`SELECT * FROM "Collection" ORDER BY id`);
  before.accounts = await db.query(`SELECT * FROM "CreditAccount" ORDER BY "userId"`);
  before.jobs = await db.query(`SELECT id, state FROM pgboss.job ORDER BY id`);

  // Rows changed in the last hour are left to their workers: nothing to report.
  runs.guarded = await runDoctor(db, ['--fix'], { OPSGRAPH_RECONCILE_MIN_AGE_SECONDS: '3600' }, 120_000);
  runs.report = await runDoctor(db, [], {}, 120_000);
  before.afterReport = {
    rows: await db.query(`SELECT id, status, sequence, result FROM "Operation" ORDER BY id`),
    collections: await db.query(`SELECT * FROM "Collection" ORDER BY id`),
    accounts: await db.query(`SELECT * FROM "CreditAccount" ORDER BY "userId"`),
    jobs: await db.query(`SELECT id, state FROM pgboss.job ORDER BY id`),
  };
  runs.fix = await runDoctor(db, ['--fix'], {}, 120_000);
}, 600_000);

afterAll(async () => {
  await api?.close();
  await db?.drop();
});

describe('npm run doctor', () => {
  it('leaves rows changed within OPSGRAPH_RECONCILE_MIN_AGE_SECONDS alone', () => {
    expect(runs.guarded!.code, runs.guarded!.stdout + runs.guarded!.stderr).toBe(0);
    expect(summaryOf(runs.guarded!.stdout)).toBe('doctor: 0 problem(s) found, 0 fixed, 0 not fixed');
  });

  it('without --fix reports every drift with what --fix would do, changes nothing, exits 2 when some is not fixable', () => {
    const { report } = runs;
    console.log(report!.stdout);
    expect(report!.code, report!.stderr).toBe(2);
    expect(summaryOf(report!.stdout)).toBe(
      'doctor: 8 problem(s) found, 6 fixable with --fix, 2 not fixable (report only: nothing changed)',
    );
    expect(before.afterReport).toEqual({
      rows: before.rows,
      collections: before.collections,
      accounts: before.accounts,
      jobs: before.jobs,
    });
    expect(report!.stdout + report!.stderr).not.toMatch(/\n\s+at /);
  });

  it('finds jobs whose operation finished or is gone, and --fix cancels them', async () => {
    expect(lineAbout(runs.report!.stdout, drift.finishedJob!)).toMatch(
      /^found {2}orphaned-job {2}job diagnostics\.sleep\/\S+ {2}created, but its operation \S+ is COMPLETED → cancel the job$/,
    );
    expect(lineAbout(runs.report!.stdout, drift.goneJob!)).toMatch(
      /created, but its operation \S+ does not exist → cancel the job$/,
    );
    expect(lineAbout(runs.fix!.stdout, drift.finishedJob!)).toMatch(
      /^fixed {2}orphaned-job .* → job cancelled$/,
    );
    expect(lineAbout(runs.fix!.stdout, drift.goneJob!)).toMatch(/^fixed {2}orphaned-job .* → job cancelled$/);
    expect(await jobState(drift.finishedJob!)).toEqual({ state: 'cancelled' });
    expect(await jobState(drift.goneJob!)).toEqual({ state: 'cancelled' });
  });

  it('finds sequences that disagree with the events; --fix raises one behind, reports one ahead', async () => {
    expect(lineAbout(runs.report!.stdout, drift.behind!)).toBe(
      `found  operation-sequence  Operation ${drift.behind}  diagnostics.sleep PENDING: sequence 0, last event 1 → set sequence to 1`,
    );
    expect(lineAbout(runs.report!.stdout, drift.ahead!)).toBe(
      `NOT FIXABLE  operation-sequence  Operation ${drift.ahead}  diagnostics.sleep PENDING: sequence 5, last event 1 → not fixable: events 2–5 are missing`,
    );
    expect(lineAbout(runs.fix!.stdout, drift.behind!)).toMatch(/^fixed .* → sequence set to 1$/);
    expect(lineAbout(runs.fix!.stdout, drift.ahead!)).toMatch(
      /^NOT FIXED .* → not fixable: events 2–5 are missing$/,
    );
    expect(
      (await one<{ sequence: number }>(`SELECT sequence FROM "Operation" WHERE id = $1`, [drift.behind]))
        .sequence,
    ).toBe(1);
    expect(
      (await one<{ sequence: number }>(`SELECT sequence FROM "Operation" WHERE id = $1`, [drift.ahead]))
        .sequence,
    ).toBe(5);
  });

  it('finds collection counts that disagree with the rows, and --fix recounts', async () => {
    expect(lineAbout(runs.report!.stdout, drift.collection!)).toBe(
      `found  collection-counts  Collection ${drift.collection}  "miscounted": documentCount 7 (rows 0), chunkCount 21 (rows 0) → set documentCount 0, chunkCount 0`,
    );
    expect(lineAbout(runs.fix!.stdout, drift.collection!)).toMatch(
      /^fixed .* → recounted: 0 documents, 0 chunks$/,
    );
    expect(
      await one(
        `SELECT "documentCount", "chunkCount", status::text AS status FROM "Collection" WHERE id = $1`,
        [drift.collection],
      ),
    ).toEqual({ documentCount: 0, chunkCount: 0, status: 'EMPTY' });
  });

  it('finds a batch outcome that disagrees with its items, and --fix records it from the items', async () => {
    expect(lineAbout(runs.report!.stdout, drift.batch!)).toBe(
      `found  batch-outcome  Operation ${drift.batch}  batch COMPLETED: recorded outcome COMPLETED, items say COMPLETED (2 COMPLETED) → record the outcome recomputed from the items (COMPLETED)`,
    );
    expect(lineAbout(runs.fix!.stdout, drift.batch!)).toMatch(/^fixed .* → outcome recorded as COMPLETED$/);
    const { result } = await one<{
      result: { status: string; counts: Record<string, number>; items: object };
    }>(`SELECT result FROM "Operation" WHERE id = $1`, [drift.batch]);
    expect(result.status).toBe('COMPLETED');
    expect(result.counts.COMPLETED).toBe(2);
    expect(Object.keys(result.items).sort()).toEqual(['a', 'b']);
  });

  it('finds credit accounts off their ledger: --fix restores one from an intact ledger, reports a broken ledger', async () => {
    expect(lineAbout(runs.report!.stdout, drift.carol!)).toMatch(
      /^found {2}credit-ledger {2}CreditAccount \S+ {2}"carol": balance \d+, reserved 0; ledger says balance \d+, reserved 0 → set balance \d+, reserved 0 from the intact ledger$/,
    );
    expect(lineAbout(runs.report!.stdout, drift.dave!)).toMatch(
      /^NOT FIXABLE {2}credit-ledger .* → not fixable: the ledger's sums give balance \d+ but its latest row recorded \d+$/,
    );
    expect(lineAbout(runs.fix!.stdout, drift.carol!)).toMatch(
      /^fixed .* → account set from the ledger: balance \d+, reserved 0$/,
    );
    expect(await account(drift.carol!)).toEqual(before.carol);
    expect(await account(drift.dave!)).toEqual(before.dave);
  });

  it('with --fix exits 2 while drift it may not fix remains, and 0 once a human has dealt with it', async () => {
    expect(runs.fix!.code, runs.fix!.stderr).toBe(2);
    expect(summaryOf(runs.fix!.stdout)).toBe('doctor: 8 problem(s) found, 6 fixed, 2 not fixed');
    await db.query(`UPDATE "Operation" SET sequence = 1 WHERE id = $1`, [drift.ahead]);
    await db.query(`DELETE FROM "CreditLedger" WHERE reason = 'a grant whose balance never moved'`);
    runs.last = await runDoctor(db, [], {}, 120_000);
    expect(runs.last.code, runs.last.stdout).toBe(0);
    expect(summaryOf(runs.last.stdout)).toBe(
      'doctor: 0 problem(s) found, 0 fixable with --fix, 0 not fixable (report only: nothing changed)',
    );
  }, 180_000);
});
