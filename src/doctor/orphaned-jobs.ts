import type { Resources } from '../resources.ts';
import { type Check, fixEach } from './finding.ts';

interface StrayJob {
  id: string;
  name: string;
  state: string;
  operationId: string | null;
  /** The operation's status; null when it does not exist. */
  status: string | null;
}

/**
 * Jobs of operation queues still waiting or running (created, retry, active) whose operation does
 * not exist or has finished, both for longer than `minAgeSeconds` (a cancel cancels its job right
 * after its commit). Bounded by `limit`, oldest first.
 */
function findStrayJobs(r: Resources, minAgeSeconds: number, limit: number) {
  const schema = r.config.bossSchema; // validated as an SQL identifier by the config
  return r.db.$queryRawUnsafe<StrayJob[]>(
    `SELECT j.id::text AS id, j.name, j.state::text AS state, j.data->>'operationId' AS "operationId",
            o.status::text AS status
       FROM "${schema}".job j
       LEFT JOIN "Operation" o ON o.id = (CASE WHEN j.data->>'operationId' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                                               THEN (j.data->>'operationId')::uuid END)
      WHERE j.name = ANY($1::text[]) AND j.state IN ('created', 'retry', 'active')
        AND j.created_on < now() - make_interval(secs => $2)
        AND (o.id IS NULL
             OR (o.status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND o."updatedAt" < now() - make_interval(secs => $2)))
      ORDER BY j.created_on
      LIMIT $3`,
    r.registry.jobTypes().map((type) => type.name),
    minAgeSeconds,
    limit,
  );
}

/** Cancels a stray job through pg-boss (which aborts a running handler's signal); returns its state after. */
async function cancelJob(r: Resources, job: StrayJob): Promise<string> {
  await r.boss.cancel(job.name, job.id);
  const [after] = await r.db.$queryRawUnsafe<{ state: string }[]>(
    `SELECT state::text AS state FROM "${r.config.bossSchema}".job WHERE name = $1 AND id = $2::uuid`,
    job.name,
    job.id,
  );
  return after?.state ?? 'gone';
}

/** pg-boss jobs whose operation is missing or finished: `--fix` cancels them so no worker runs them. */
export const orphanedJobs: Check = {
  kind: 'orphaned-job',
  description:
    'pg-boss jobs still waiting or running whose operation is missing or finished (--fix cancels the job)',
  async run(r, options) {
    const jobs = await findStrayJobs(r, options.minAgeSeconds, options.limit);
    const finding = (job: StrayJob) => ({
      kind: 'orphaned-job',
      subject: `job ${job.name}/${job.id}`,
      problem: `${job.state}, but its operation ${job.operationId ?? '(none named)'} ${job.status === null ? 'does not exist' : `is ${job.status}`}`,
      action: 'cancel the job',
      fixable: true,
    });
    if (!options.fix) return jobs.map(finding);
    return fixEach(jobs, finding, async (job) => `job ${await cancelJob(r, job)}`);
  },
};
