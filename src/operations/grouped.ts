import type { PgBoss } from 'pg-boss';
import { SETTLE_CTES } from '../credits/ledger.ts';
import { isConnectionError } from '../db/unavailable.ts';
import { coalesce } from './coalesce.ts';
import { type EventJson, eventJsonSql, type OperationJson, operationJsonSql } from './record.ts';
import { mayApply, type OperationStatus } from './status.ts';
import type { Applied } from './transitions.ts';

/**
 * The worker's two most frequent transitions, start (PENDING → PROCESSING) and complete
 * (PROCESSING → COMPLETED), for several operations in one statement each: a conditional UPDATE,
 * numbered event INSERT and (to complete) credit settlement like transitions.ts `apply`, applied
 * to every listed operation that is still in the source status (and, to complete, still held by
 * the given claim). transitions.ts `start` and `complete` are these statements for one operation.
 * With a backlog, the attempts a process starts or finishes at the same time share one statement,
 * one transaction and (to complete) one update of each owner's credit account row, instead of one
 * of each per operation.
 */
/**
 * Runs one named (prepared once per connection) statement on the `pg` driver. The two statements
 * here run for nearly every job, so they skip Prisma's query path (about three times the CPU per
 * statement of the driver alone, measured) and the server's parse and plan of each.
 */
export type NamedQuery = <T>(name: string, text: string, values: unknown[]) => Promise<T[]>;

/**
 * A NamedQuery on pg-boss's `pg` pool (its `getDb()`; pg-boss passes the query config to
 * `pg.Pool.query` unchanged). These writes need at most two of its connections: each kind runs one
 * statement at a time.
 */
export const bossQuery =
  (boss: PgBoss): NamedQuery =>
  async <T>(name: string, text: string, values: unknown[]) => {
    const config = { name, text } as unknown as string; // pg's QueryConfig, typed as text by pg-boss
    return (await boss.getDb().executeSql(config, values)).rows as T[];
  };

export interface GroupedTransitions {
  /** transitions.start for one operation, grouped with the starts made meanwhile. */
  start(operationId: string): Promise<Applied | null>;
  /**
   * transitions.complete for one operation, grouped with the completions made meanwhile; with
   * `job`, the attempt's pg-boss job is completed in the same statement (see completeMany).
   */
  complete(operationId: string, claimId: string, result: unknown, job?: JobRef): Promise<Applied | null>;
}

/** The pg-boss job an attempt runs under, as fetched: its queue, id and attempt (fences the completion). */
export interface JobRef {
  name: string;
  id: string;
  retryCount: number;
}

/** How many operations one grouped statement changes at most. */
const MAX_GROUP = 64;

/**
 * `bossSchema`: pg-boss's schema (a validated SQL identifier), where completions that name their
 * job complete it too.
 */
export function groupedTransitions(db: NamedQuery, workerId: string, bossSchema: string): GroupedTransitions {
  // A group that fails for another reason than an unreachable database (a deadlock with a bulk
  // cancel, a result that cannot be serialized) is retried one by one, so each fails on its own.
  const options = { max: MAX_GROUP, retrySingly: (error: unknown) => !isConnectionError(error) };
  const start = coalesce((ids: string[]) => startMany(db, workerId, ids), options);
  const complete = coalesce((items: Completion[]) => completeMany(db, items, bossSchema), options);
  return {
    start,
    complete: (operationId, claimId, result, job) => complete({ operationId, claimId, result, job }),
  };
}

export interface Completion {
  operationId: string;
  claimId: string;
  result: unknown;
  /** The attempt's pg-boss job, completed in the same statement (only where a bossSchema is given). */
  job?: JobRef;
}

/**
 * The completion of the listed pg-boss jobs, as `boss.complete(name, jobs)` writes it with pg-boss 12
 * (its `completeJobs` plan, fenced to the fetched attempt, no output): only a job still active under
 * that attempt. It runs whether or not the operation's own change applied (an attempt whose result
 * was discarded has still ended, and its job with it), as the fetcher's `boss.complete` did after
 * the handler returned. Through the partitioned parent table `job`, which routes by queue name to
 * the queue's own table. test/operations/complete-job.test.ts compares the row with boss.complete's.
 */
const jobCompletionCte = (schema: string) => `
  job_done AS (
    UPDATE ${schema}.job j
       SET completed_on = ${schema}.job_now(), state = 'completed', output = NULL
      FROM input
     WHERE input.job IS NOT NULL AND j.name = input."jobName" AND j.id = input.job
       AND j.state = 'active' AND (j.id::text || ':' || j.retry_count::text) = input."jobAttempt"
    RETURNING j.id
  ),`;

type Row = { operation: OperationJson; event: EventJson };

/** The statuses a change into `to` applies from, as the transition table allows. */
const sources = (from: OperationStatus[], to: OperationStatus) => from.filter((s) => mayApply(s, to));

/** The event rows for `updated`, and the pair of each as JSON (the tail of both statements). */
const eventAndResult = (kind: string, dataSql: string, join = '') => `
  inserted AS (
    INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent", "progressTotal", message, data)
    SELECT u.id, u.sequence, '${kind}', u.status, u."progressCurrent", u."progressTotal", NULL, ${dataSql}
      FROM updated u${join}
    RETURNING *
  )`;

const SELECT_APPLIED = `SELECT ${operationJsonSql('u')} AS operation, ${eventJsonSql('i')} AS event
  FROM updated u JOIN inserted i ON i."operationId" = u.id`;

/**
 * In the order of `ids`: each operation's Applied, or null where the change did not apply. An id
 * listed twice (two jobs of one operation fetched at once) applied once: only its first caller
 * gets the row.
 */
const inOrder = (ids: string[], rows: Row[]): (Applied | null)[] => {
  const byId = new Map(rows.map((row) => [row.operation.id, row]));
  return ids.map((id) => {
    const row = byId.get(id) ?? null;
    byId.delete(id);
    return row;
  });
};

export async function startMany(
  db: NamedQuery,
  workerId: string,
  ids: string[],
): Promise<(Applied | null)[]> {
  const rows = await db<Row>(
    'opsgraph_start_many',
    `WITH updated AS (
       UPDATE "Operation" o
          SET status = 'PROCESSING', sequence = o.sequence + 1, "updatedAt" = now(), attempt = o.attempt + 1,
              "startedAt" = now(), "workerId" = $2, "claimId" = gen_random_uuid(), "nextAttemptAt" = NULL
        WHERE o.id = ANY($1::uuid[]) AND o.status = ANY($3::"OperationStatus"[])
        RETURNING o.*
     ), ${eventAndResult('STARTED', "jsonb_build_object('attempt', u.attempt)")}
     ${SELECT_APPLIED}`,
    [ids, workerId, sources(['PENDING'], 'PROCESSING')],
  );
  return inOrder(ids, rows);
}

/**
 * Completes the listed operations; with `bossSchema`, also the pg-boss job each completion names,
 * in the same statement (one transaction for the row, its event and its job, and one statement
 * per group instead of two).
 */
export async function completeMany(
  db: NamedQuery,
  items: Completion[],
  bossSchema?: string,
): Promise<(Applied | null)[]> {
  // One JSON parameter carries every operation's claim and result (each result serialized once).
  const input = JSON.stringify(
    items.map((item) => ({
      id: item.operationId,
      claim: item.claimId,
      result: item.result ?? null,
      hasResult: item.result !== undefined,
      job: item.job?.id ?? null,
      jobName: item.job?.name ?? null,
      jobAttempt: item.job ? `${item.job.id.toLowerCase()}:${item.job.retryCount}` : null,
    })),
  );
  const rows = await db<Row>(
    bossSchema ? 'opsgraph_complete_many_jobs' : 'opsgraph_complete_many',
    `WITH input AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb)
         AS t(id uuid, claim uuid, result jsonb, "hasResult" boolean, job uuid, "jobName" text, "jobAttempt" text)
     ), ${bossSchema ? jobCompletionCte(bossSchema) : ''} updated AS (
       UPDATE "Operation" o
          SET status = 'COMPLETED', sequence = o.sequence + 1, "updatedAt" = now(),
              result = COALESCE(input.result, 'null'::jsonb), "completedAt" = now(), "workerId" = NULL, "claimId" = NULL
         FROM input
        WHERE o.id = input.id AND o."claimId" = input.claim AND o.status = ANY($2::"OperationStatus"[])
        RETURNING o.*
     ), ${eventAndResult(
       'COMPLETED',
       // { result } built from the stored value, as transitions.complete does.
       `CASE WHEN input."hasResult" THEN jsonb_build_object('result', u.result) ELSE '{}'::jsonb END`,
       ' JOIN input ON input.id = u.id',
     )}, ${SETTLE_CTES}
     ${SELECT_APPLIED}`,
    [input, sources(['PROCESSING'], 'COMPLETED')],
  );
  return inOrder(
    items.map((item) => item.operationId),
    rows,
  );
}
