import type { Job, PgBoss } from 'pg-boss';
import type { Logger } from '../logger.ts';
import type { JobData } from './queues.ts';

/** A job a fetcher holds (running, or fetched ahead): its claim aborts when the job is no longer ours. */
export interface Held {
  job: Job<JobData>;
  claim: AbortController;
}

/**
 * Refreshes the held jobs of a queue with one fenced `touch` every half heartbeat (the smallest of
 * the held jobs', as pg-boss does per batch), and aborts the claim of a job the touch did not find
 * under this attempt: cancelled (`boss.cancel`), failed or expired by pg-boss.
 */
export function heartbeatTimer(boss: PgBoss, queue: string, held: Map<string, Held>, log: Logger) {
  let timer: NodeJS.Timeout | undefined;
  let seconds = 0;
  let touching = false;
  const beat = async () => {
    if (touching) return;
    const jobs = [...held.values()].filter((entry) => entry.job.heartbeatSeconds);
    if (jobs.length === 0) {
      clearInterval(timer);
      timer = undefined;
      seconds = 0;
      return;
    }
    touching = true;
    try {
      // pg-boss returns the ids it refreshed beside the count (untyped: `settled`).
      const touched = (await boss.touch(
        queue,
        jobs.map((entry) => entry.job),
      )) as { settled?: string[] };
      // Without the ids it refreshed, a touch cannot tell which job went missing: abort nothing.
      if (!touched.settled) return;
      const refreshed = new Set(touched.settled);
      for (const entry of jobs) {
        // A job that ended meanwhile is no longer held, and was not refreshed for that reason.
        if (!refreshed.has(entry.job.id) && held.get(entry.job.id) === entry)
          entry.claim.abort(new Error(`job ${entry.job.id} is no longer active under this worker's claim`));
      }
    } catch (error) {
      // A heartbeat that could not run says nothing about the claims.
      log.warn('job heartbeat failed', { queue, error: (error as Error).message });
    } finally {
      touching = false;
    }
  };
  return {
    start(heartbeatSeconds: number | null | undefined) {
      if (!heartbeatSeconds || (timer && seconds <= heartbeatSeconds)) return;
      clearInterval(timer);
      seconds = heartbeatSeconds;
      timer = setInterval(() => void beat(), (heartbeatSeconds * 1000) / 2);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
