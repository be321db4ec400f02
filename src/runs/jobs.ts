import type { Job, PgBoss } from 'pg-boss';
import type { Config } from '../config.ts';
import type { Resources } from '../resources.ts';
import { RETENTION_QUEUE, removeExpired } from './retention.ts';
import { fireSchedule, SCHEDULE_QUEUE } from './schedules.ts';

/**
 * The queues of schedule firings and of the retention job, and the retention job's own pg-boss
 * schedule (`config.retentionCron`, UTC; upserted by every process at boot, so a changed
 * OPSGRAPH_RETENTION_CRON takes effect on the next start). An invalid cron fails the boot.
 */
export async function prepareRunsQueues(boss: PgBoss, config: Config): Promise<void> {
  for (const name of [SCHEDULE_QUEUE, RETENTION_QUEUE]) {
    if (await boss.getQueue(name)) continue;
    await boss.createQueue(name, { notify: true, retryLimit: 3 }).catch(async (error: unknown) => {
      if (!(await boss.getQueue(name))) throw error; // another process created it first
    });
  }
  await boss.schedule(RETENTION_QUEUE, config.retentionCron, {}, { tz: 'UTC', retryLimit: 1 });
}

/** Works both queues in a process that runs jobs; returns how to stop. */
export async function startRunsWorkers(r: Resources): Promise<{ stop(): Promise<void> }> {
  const log = r.logger.child({ component: 'runs' });
  const options = {
    batchSize: 1,
    pollingIntervalSeconds: r.config.bossPollingSeconds,
    notifyPollingIntervalSeconds: r.config.bossNotifyPollingSeconds,
  };
  await r.boss.work<{ scheduleId: string }>(SCHEDULE_QUEUE, options, async ([job]) => {
    if (job) await fireSchedule(r, job as Job<{ scheduleId: string }>);
  });
  await r.boss.work(RETENTION_QUEUE, options, async () => {
    const removed = await removeExpired(r);
    if (removed) log.info('retention removed expired operations', { removed });
  });
  return {
    async stop() {
      await Promise.all(
        [SCHEDULE_QUEUE, RETENTION_QUEUE].map((name) => r.boss.offWork(name, { wait: false })),
      );
    },
  };
}
