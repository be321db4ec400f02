import { randomUUID } from 'node:crypto';
import type { Config } from '../config.ts';
import { reserveCtes } from '../credits/ledger.ts';
import { type Db, poolOf, prepared, preparedName } from '../db/prisma.ts';
import { fairPrioritySql } from '../quotas/fair-share.ts';
import { admitSql, refusing } from '../quotas/quotas.ts';
import { inStatementTurn } from '../request-context.ts';
import { jobPrioritySql } from '../runs/timing.ts';
import { CREATED_CTES, type NewOperation, operationValues } from './insert.ts';
import { type JobTable, jobCtes } from './job-row.ts';
import { jobOptions } from './queues.ts';
import { type EventMessage, eventJsonSql, operationJsonSql } from './record.ts';

/**
 * Starts an operation of a job type in ONE statement, its own transaction: the operation row, its
 * CREATED event and audit row (insert.ts), the quota check and credit reservation
 * (src/quotas/quotas.ts, src/credits/ledger.ts) and its pg-boss job with the NOTIFY that wakes the
 * workers (job-row.ts). One round trip instead of a transaction of seven (BEGIN, fair-share count,
 * insert, job, quota lock, count and reservation, COMMIT), and the owner's quota lock, taken by the
 * check, is held only while the database finishes the statement and commits, never while this
 * process gets round to its next statement. A refusal raises inside the statement, so nothing is
 * written; the fair-share rank of the job comes from the check's own count.
 *
 * Returns null, writing nothing and checking nothing, when the owner already used the idempotency
 * key. Starts that run more in their transaction (inline types, retries with their audit rows) use
 * insertOperation and enforceQuotas instead.
 *
 * The statement goes to the client's node-postgres pool directly (as a named prepared statement,
 * taking the request's statement turn as every API statement does): Prisma's raw query path
 * serializes each parameter to JSON and back and runs its query interpreter, CPU on the way to the
 * commit that wakes a worker (issue 13, point 6: start latency). A client made otherwise (a
 * transaction's) goes through Prisma.
 */
export async function createOperation(
  db: Db,
  config: Pick<Config, 'quotaMaxActive' | 'quotaStartsPerMinute' | 'apiStatementsPerRequest'>,
  table: JobTable,
  spec: NewOperation & { priority: number },
): Promise<EventMessage | null> {
  const options = jobOptions(spec.type.policy);
  const text = sql(table);
  const values = [
    ...operationValues(spec, randomUUID(), randomUUID()),
    spec.priority,
    config.quotaMaxActive,
    config.quotaStartsPerMinute,
    options.retryLimit,
    options.expireInSeconds,
    options.heartbeatSeconds,
  ];
  const pool = poolOf(db);
  const name = preparedName(text);
  const run = (): Promise<EventMessage[]> =>
    pool && name
      ? inStatementTurn(config.apiStatementsPerRequest, async () => {
          const result = await pool.query<EventMessage>({ name, text, values });
          return result.rows;
        })
      : db.$queryRawUnsafe<EventMessage[]>(text, ...values);
  const rows = await refusing(config, 1, () =>
    run().catch((error) => (waitedForPool(error) ? run() : Promise.reject(error))),
  );
  return rows[0] ?? null;
}

/**
 * True when no pooled connection came free within the pool's wait (nothing was sent): the owner's
 * other starts may hold them all while they take turns on the quota lock. Such a start tries once
 * more, so it waits up to twice the pool's connection timeout (10 s by default, as the transaction
 * it replaced did) rather than fail.
 */
const waitedForPool = (error: unknown) =>
  error instanceof Error && error.message.includes('timeout exceeded when trying to connect');

/** The statement per job table (schema and table are SQL identifiers; everything else a parameter), prepared. */
const statements = new Map<string, string>();

function sql(table: JobTable): string {
  const key = `${table.schema}.${table.table}.${table.notify}`;
  let text = statements.get(key);
  if (text === undefined) {
    text = prepared(
      `opsgraph_start_${key.replaceAll('.', '_')}`,
      `WITH ${CREATED_CTES},
      ${reserveCtes('$4::uuid', 'SELECT id, "creditCost"::bigint AS cost, true AS root FROM op', (total) =>
        admitSql({
          owner: '$4::uuid',
          started: '(SELECT id FROM op)',
          requested: '1',
          maxActive: '$15::int',
          perMinute: '$16::int',
          cost: total,
        }),
      )},
      ${jobCtes(table, {
        from: 'op, admitted',
        id: 'op."jobId"',
        name: '$2::text',
        data: "jsonb_build_object('operationId', op.id)",
        priority: jobPrioritySql(fairPrioritySql('admitted.rank'), '$14::int'),
        startAfter: '$12::timestamptz',
        retryLimit: '$17::int',
        expireSeconds: '$18::int',
        heartbeatSeconds: '$19::int',
      })}
     SELECT ${operationJsonSql('op')} AS operation, ${eventJsonSql('ev')} AS event
       FROM op, ev WHERE (SELECT count(*) FROM job_notified) >= 0`,
    );
    statements.set(key, text);
  }
  return text;
}
