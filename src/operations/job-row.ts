import type { PgBoss } from 'pg-boss';

/**
 * A start's pg-boss job written by opsgraph's own statement, so the operation row, its event, its
 * credits and its job are one statement and one round trip (src/operations/create.ts) instead of
 * a transaction of several. The row is the one `boss.send(type, { operationId }, { id, ...jobOptions,
 * startAfter })` writes with pg-boss 12 (its `insertJobs` plan): the job's own options, the
 * queue's for the rest (LEFT JOINed: a missing queue fails on the job's foreign key, as in
 * pg-boss), then one `pg_notify` on pg-boss's channel when the job is due now, which wakes the
 * workers as pg-boss's own send does. test/operations/job-row.test.ts compares the two rows and
 * the notification, so a pg-boss upgrade that changes either fails there.
 */

/** Where a queue's jobs live: pg-boss's schema and the queue's table in it. */
export interface JobTable {
  schema: string;
  table: string;
  /** Whether the queue wakes workers with NOTIFY (`notify: true`). */
  notify: boolean;
}

/** Queue tables per pg-boss instance and queue name, read once (a queue's table never changes). */
const tables = new WeakMap<PgBoss, Map<string, Promise<JobTable>>>();

/** The table of queue `name` (the queue must exist), cached per pg-boss instance. */
export function jobTable(boss: PgBoss, schema: string, name: string): Promise<JobTable> {
  const byName = tables.get(boss) ?? new Map<string, Promise<JobTable>>();
  tables.set(boss, byName);
  let found = byName.get(name);
  if (!found) {
    found = boss.getQueue(name).then((queue) => {
      if (!queue) throw new Error(`pg-boss queue ${name} does not exist`);
      return { schema, table: (queue as { table: string }).table, notify: queue.notify === true };
    });
    found.catch(() => byName.delete(name));
    byName.set(name, found);
  }
  return found;
}

/** SQL expressions of the job's values (parameters or columns of the statement's CTEs). */
export interface JobValues {
  /** FROM list the values come from, e.g. `op, admitted`. */
  from: string;
  id: string;
  /** The queue name (the operation type). */
  name: string;
  data: string;
  priority: string;
  /** When it may start (timestamptz), or NULL: now. */
  startAfter: string;
  retryLimit: string;
  expireSeconds: string;
  heartbeatSeconds: string;
}

/** CTEs `job` (the inserted job) and `job_notified` (its NOTIFY); the statement must read `job_notified`. */
export function jobCtes(t: JobTable, v: JobValues): string {
  const s = t.schema;
  const startAfter = `COALESCE(${v.startAfter}, ${s}.job_now())`;
  // pg-boss's channel: 'pgboss_' and the first 24 hex digits of sha224 of the schema name.
  const channel = `('pgboss_' || left(encode(sha224('${s}'::bytea), 'hex'), 24))`;
  return `
  job AS (
    INSERT INTO ${s}.${t.table} (id, name, data, priority, start_after, created_on, expire_seconds,
      deletion_seconds, keep_until, retry_limit, retry_delay, retry_backoff, retry_delay_max, policy,
      dead_letter, heartbeat_seconds)
    SELECT ${v.id}, ${v.name}, ${v.data}, ${v.priority}, ${startAfter}, ${s}.job_now(), ${v.expireSeconds},
           COALESCE(q.deletion_seconds, 604800),
           ${startAfter} + COALESCE(q.retention_seconds, 1209600) * interval '1s',
           ${v.retryLimit}, COALESCE(q.retry_delay, 0), COALESCE(q.retry_backoff, false), q.retry_delay_max,
           q.policy, q.dead_letter, ${v.heartbeatSeconds}
      FROM ${v.from} LEFT JOIN ${s}.queue q ON q.name = ${v.name}
    RETURNING start_after
  ), job_notified AS (
    SELECT pg_notify(${channel}, ${v.name}) FROM job
     WHERE ${t.notify ? 'true' : 'false'} AND start_after <= ${s}.job_now() LIMIT 1
  )`;
}
