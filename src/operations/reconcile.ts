import { randomUUID } from 'node:crypto';
import { fromPrisma } from 'pg-boss';
import { skipItem } from '../batches/items.ts';
import type { Resources } from '../resources.ts';
import { endAttempt, publish } from './attempt.ts';
import { type JobData, jobOptions } from './queues.ts';
import * as transitions from './transitions.ts';

/** One operation the reconciler found inconsistent with its job, and what it did about it. */
export interface Repair {
  operationId: string;
  type: string;
  status: string;
  /** What was wrong, e.g. "job missing", "job failed", "worker heartbeat lost". */
  problem: string;
  /** The event it recorded (RETRY_SCHEDULED, FAILED, REQUEUED), or why it could not. */
  action: string;
  fixed: boolean;
}

/** An unfinished operation and the state of its job, as `findOrphans` reads it. */
export interface Candidate {
  id: string;
  type: string;
  status: 'PENDING' | 'PROCESSING';
  claimId: string | null;
  attempt: number;
  jobId: string | null;
  state: string | null;
  stale: boolean;
  /** A delayed start (runAt), which a new job keeps. */
  scheduledFor: Date | null;
}

/** Repairs one reconcile pass runs at once. */
const REPAIR_CONCURRENCY = 4;

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

const WORKER_LOST: transitions.OperationError = {
  code: 'WORKER_LOST',
  message: 'the worker running this attempt stopped (no heartbeat, or its job ended without a result)',
};

/**
 * The unfinished operations (changed more than `minAgeSeconds` ago) whose job is missing, finished,
 * failed, cancelled, or whose worker stopped sending heartbeats: what `reconcile` repairs.
 */
export async function findOrphans(r: Resources, minAgeSeconds: number, limit: number): Promise<Candidate[]> {
  const schema = r.config.bossSchema; // validated as an SQL identifier by the config
  return r.db.$queryRawUnsafe<Candidate[]>(
    `SELECT o.id, o.type, o.status::text AS status, o."claimId", o.attempt, o."jobId", o."scheduledFor", j.state::text AS state,
            coalesce(j.state = 'active' AND j.heartbeat_seconds IS NOT NULL
              AND coalesce(j.heartbeat_on, j.started_on) < now() - make_interval(secs => j.heartbeat_seconds), false) AS stale
       FROM "Operation" o
       LEFT JOIN "${schema}".job j ON j.name = o.type AND j.id = o."jobId"
      WHERE o.status IN ('PENDING', 'PROCESSING')
        AND o."updatedAt" < now() - make_interval(secs => $1)
        -- batch items waiting for their dependencies have no job yet, by design
        AND NOT (o."batchId" IS NOT NULL AND o."jobId" IS NULL AND o.status = 'PENDING')
        AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'failed')
             OR (j.state = 'active' AND j.heartbeat_seconds IS NOT NULL
                 AND coalesce(j.heartbeat_on, j.started_on) < now() - make_interval(secs => j.heartbeat_seconds)))
      ORDER BY o."updatedAt"
      LIMIT $2`,
    minAgeSeconds,
    limit,
  );
}

/**
 * Compares unfinished operations with their pg-boss jobs and repairs each one whose job is missing,
 * finished, failed, cancelled, or whose worker stopped sending heartbeats: a PROCESSING operation's
 * attempt counts as lost (retried by its policy, else FAILED with WORKER_LOST); a PENDING one gets a
 * new job. Every repair is a conditional transition with its event, so concurrent reconcilers (one
 * per worker process) never repair twice. Operations younger than `minAgeSeconds` are left alone.
 */
export async function reconcile(
  r: Resources,
  options: { minAgeSeconds: number; limit?: number },
): Promise<Repair[]> {
  const candidates = await findOrphans(r, options.minAgeSeconds, options.limit ?? 500);
  // Every worker process reconciles: a shuffled order makes them split the work rather than race
  // for the same operation (the conditional transitions make a lost race harmless either way).
  const queue = shuffle(candidates);
  const repairs: Repair[] = [];
  const repairNext = async (): Promise<void> => {
    for (let next = queue.pop(); next; next = queue.pop()) repairs.push(await repairOne(r, next));
  };
  await Promise.all(Array.from({ length: REPAIR_CONCURRENCY }, repairNext));
  repairs.push(...(await skipAbandonedItems(r, options.limit ?? 500)));
  repairs.push(...(await releaseAbandonedCollections(r, options.minAgeSeconds)));
  await wakeDueQueues(r);
  return repairs;
}

/** Collections left BUSY by an operation that ended: what `reconcile` releases. */
export function findAbandonedCollections(r: Resources, minAgeSeconds: number, limit: number) {
  return r.db.$queryRawUnsafe<{ id: string; operationId: string; type: string; status: string }[]>(
    `SELECT c.id, o.id AS "operationId", o.type, o.status::text AS status
       FROM "Collection" c JOIN "Operation" o ON o.id = c."busyOperationId"
      WHERE o.status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND o."updatedAt" < now() - make_interval(secs => $1)
      LIMIT $2`,
    minAgeSeconds,
    limit,
  );
}

/**
 * A collection is marked BUSY by the operation writing to it, which marks it free again when it
 * ends. If that operation ended without doing so (its worker died and it was failed by a repair),
 * the collection is released here as INCOMPLETE, saying which operation stopped. (The API already
 * shows such a collection as INCOMPLETE; this makes the row say so too.)
 */
async function releaseAbandonedCollections(r: Resources, minAgeSeconds: number): Promise<Repair[]> {
  const released = await r.db.$queryRawUnsafe<
    { id: string; operationId: string; type: string; status: string }[]
  >(
    `UPDATE "Collection" c
        SET "busyOperationId" = NULL, status = 'INCOMPLETE', "updatedAt" = now(),
            "statusMessage" = o.type || ' ended ' || o.status::text || ' without finishing; committed batches were kept'
       FROM "Operation" o
      WHERE o.id = c."busyOperationId" AND o.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
        -- a cancelled handler releases the collection itself at its next batch boundary
        AND o."updatedAt" < now() - make_interval(secs => $1)
      RETURNING c.id, o.id AS "operationId", o.type, o.status::text AS status`,
    minAgeSeconds,
  );
  return released.map((row) => ({
    operationId: row.operationId,
    type: row.type,
    status: row.status,
    problem: `collection ${row.id} left BUSY by an operation that ended`,
    action: 'collection INCOMPLETE',
    fixed: true,
  }));
}

/**
 * Batch items that never started (PENDING: waiting without a job, or released with one but not
 * taken yet) whose batch has ended: what `reconcile` skips.
 */
export function findAbandonedItems(r: Resources, limit: number) {
  return r.db.$queryRawUnsafe<{ id: string; type: string; jobId: string | null; batchStatus: string }[]>(
    `SELECT i.id, i.type, i."jobId", b.status::text AS "batchStatus"
       FROM "Operation" i JOIN "Operation" b ON b.id = i."batchId"
      WHERE i.status = 'PENDING' AND i."startedAt" IS NULL AND b.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
      LIMIT $1`,
    limit,
  );
}

/**
 * Batch items wait without a job until their coordinator starts them. If the batch ended without
 * starting them (its coordinator gave up), they would wait for ever, or (released with a job) run
 * with nobody to watch them: they are SKIPPED instead, and their job cancelled.
 */
async function skipAbandonedItems(r: Resources, limit: number): Promise<Repair[]> {
  const items = await findAbandonedItems(r, limit);
  const repairs: Repair[] = [];
  for (const item of items) {
    const reason = `its batch ended (${item.batchStatus}) before it started`;
    const applied = await skipItem(r, item, reason, null);
    repairs.push({
      operationId: item.id,
      type: item.type,
      status: 'PENDING',
      problem: 'batch ended before the item started',
      action: applied ? 'SKIPPED' : 'changed meanwhile',
      fixed: true,
    });
  }
  return repairs;
}

/** Scheduled jobs (retries) that fell due get no NOTIFY: wake this process's workers for them. */
async function wakeDueQueues(r: Resources): Promise<void> {
  const due = await r.db.$queryRawUnsafe<{ name: string }[]>(
    `SELECT DISTINCT name FROM "${r.config.bossSchema}".job WHERE state = 'created' AND start_after <= now()`,
  );
  for (const { name } of due) r.waker.wake(name);
}

/** What is wrong with an orphan: "job missing", "worker heartbeat lost" or "job <state>". */
export const orphanProblem = (c: Candidate): string =>
  c.state === null ? 'job missing' : c.stale ? 'worker heartbeat lost' : `job ${c.state}`;

async function repairOne(r: Resources, c: Candidate): Promise<Repair> {
  const problem = orphanProblem(c);
  const report = (action: string, fixed: boolean): Repair => ({
    operationId: c.id,
    type: c.type,
    status: c.status,
    problem,
    action,
    fixed,
  });
  const type = r.registry.get(c.type);
  try {
    if (!type) {
      const error = { code: 'UNKNOWN_TYPE', message: `no worker knows the operation type "${c.type}"` };
      const applied = await transitions.fail(r.db, c.id, null, error, { from: [c.status] });
      if (applied) publish(r, applied);
      return report(applied ? 'FAILED' : 'changed meanwhile', true);
    }
    if (c.stale && c.jobId) {
      // If that worker is alive after all, its job's signal aborts and its late writes are discarded.
      await r.boss.cancel(c.type, c.jobId).catch(() => {});
    }
    let applied: transitions.Applied | null;
    if (c.status === 'PROCESSING' && c.claimId) {
      applied = await endAttempt(
        r,
        type,
        { operationId: c.id, claimId: c.claimId, attempt: c.attempt },
        { error: WORKER_LOST, retryable: true, release: false },
      );
    } else {
      const jobId = randomUUID();
      applied = await r.db.$transaction(async (tx) => {
        const requeued = await transitions.requeuePending(tx, c.id, c.jobId, jobId);
        if (requeued) {
          const data: JobData = { operationId: c.id };
          // A delayed start that lost its job still waits for its runAt.
          const delayed = c.scheduledFor && c.scheduledFor > new Date() ? { startAfter: c.scheduledFor } : {};
          await r.boss.send(type.name, data, {
            id: jobId,
            ...jobOptions(type.policy),
            ...delayed,
            db: fromPrisma(tx),
          });
        }
        return requeued;
      });
    }
    if (applied) publish(r, applied);
    return report(applied ? applied.event.kind : 'changed meanwhile', true);
  } catch (error) {
    return report(`could not repair: ${(error as Error).message}`, false);
  }
}
