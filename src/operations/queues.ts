import { PgBoss } from 'pg-boss';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { OperationPolicy, Registry } from './registry.ts';

/** The pg-boss job payload: the operation row holds everything else. */
export interface JobData {
  operationId: string;
}

/** Starts pg-boss on the database (creating its schema on first use) with LISTEN/NOTIFY on. */
export async function startBoss(config: Config, databaseUrl: string, logger: Logger): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    schema: config.bossSchema,
    useListenNotify: true,
    max: 10,
  });
  boss.on('error', (error: Error) => logger.warn('pg-boss error', { error: error.message }));
  await boss.start();
  return boss;
}

/**
 * pg-boss options for one attempt's job. opsgraph schedules retries itself (a new job per attempt,
 * so the operation can show when the next one runs), so pg-boss never retries; its expiry is a
 * backstop just past the type's hard timeout, which the runner enforces itself.
 */
export const jobOptions = (policy: OperationPolicy) => ({
  retryLimit: 0,
  expireInSeconds: policy.hardTimeoutSeconds + 60,
  heartbeatSeconds: policy.heartbeatSeconds,
});

/** Creates one queue per operation type, named after the type. */
export async function ensureQueues(boss: PgBoss, registry: Registry): Promise<void> {
  for (const type of registry.list()) {
    const options = jobOptions(type.policy);
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
