import { PgBoss } from 'pg-boss';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { REQUEUE_PRIORITY } from '../quotas/fair-share.ts';
import type { OperationPolicy, Registry } from './registry.ts';

/** The pg-boss job payload: the operation row holds everything else. */
export interface JobData {
  operationId: string;
}

/**
 * Starts pg-boss on the database (creating its schema on first use) with LISTEN/NOTIFY on. pg-boss
 * rides out a database restart by itself: its pool replaces broken connections, workers keep
 * polling, and its LISTEN connection reconnects with backoff and then wakes every worker. While the
 * database is down each poll fails; those errors are logged once per kind every 10 s, not per poll.
 */
export async function startBoss(config: Config, databaseUrl: string, logger: Logger): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    schema: config.bossSchema,
    useListenNotify: true,
    // Its fetches and completions, plus the runner's grouped start and complete (at most two at once,
    // src/operations/grouped.ts).
    max: 12,
    // Fail a poll instead of waiting long for a connection while the database is unreachable.
    connectionTimeoutMillis: 5000,
    // Schedules (src/runs/schedules.ts): how often a process looks for due ones and forwards them.
    cronMonitorIntervalSeconds: config.cronMonitorIntervalSeconds,
    cronWorkerIntervalSeconds: Math.min(5, config.cronMonitorIntervalSeconds),
  });
  const quiet = rateLimited(10_000);
  boss.on('error', (error: Error) => {
    // pg-boss appends "(Queue: …, Worker: …)" to worker errors: one kind per underlying message.
    const kind = error.message.replace(/ \(Queue: .*\)$/, '');
    quiet(kind, (suppressed) =>
      logger.warn('pg-boss error', { error: error.message, ...(suppressed ? { suppressed } : {}) }),
    );
  });
  await boss.start();
  return boss;
}

/** Runs `log` for a key at most once per `intervalMs`, telling it how many calls it skipped. */
function rateLimited(intervalMs: number) {
  const seen = new Map<string, { at: number; suppressed: number }>();
  return (key: string, log: (suppressed: number) => void) => {
    const now = Date.now();
    const entry = seen.get(key);
    if (entry && now - entry.at < intervalMs) {
      entry.suppressed += 1;
      return;
    }
    if (seen.size > 100) seen.clear();
    seen.set(key, { at: now, suppressed: 0 });
    log(entry?.suppressed ?? 0);
  };
}

/**
 * pg-boss options for one attempt's job. opsgraph schedules retries itself (a new job per attempt,
 * so the operation can show when the next one runs), so pg-boss never retries; its expiry is a
 * backstop just past the type's hard timeout, which the runner enforces itself. `priority` is the
 * job's fair-share rank (src/quotas/fair-share.ts); default: that of a retry.
 */
export const jobOptions = (policy: OperationPolicy, priority = REQUEUE_PRIORITY) => ({
  retryLimit: 0,
  expireInSeconds: Math.ceil(policy.hardTimeoutSeconds) + 60,
  heartbeatSeconds: Math.ceil(policy.heartbeatSeconds),
  priority,
});

/** Creates one queue per operation type, named after the type. */
export async function ensureQueues(boss: PgBoss, registry: Registry): Promise<void> {
  for (const type of registry.jobTypes()) {
    const { priority: _, ...options } = jobOptions(type.policy);
    const existing = await boss.getQueue(type.name);
    if (!existing) {
      await boss.createQueue(type.name, { notify: true, ...options }).catch(async (error: unknown) => {
        // Another process created it first.
        if (!(await boss.getQueue(type.name))) throw error;
      });
    } else {
      await boss.updateQueue(type.name, {
        notify: true,
        retryLimit: 0,
        expireInSeconds: options.expireInSeconds,
      });
    }
  }
}
