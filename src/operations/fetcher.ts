import { createHash } from 'node:crypto';
import type { Job, PgBoss } from 'pg-boss';
import type { Logger } from '../logger.ts';
import { coalesce } from './coalesce.ts';
import type { JobData } from './queues.ts';

/**
 * One fetcher per operation type and process, in place of one single-slot pg-boss worker per slot.
 * When slots are free it fetches up to that many jobs in ONE pg-boss fetch (`boss.fetch` with
 * `batchSize`: pg-boss's own locking statement, priority first, then oldest) and hands each to a
 * slot; when a slot frees (or a NOTIFY, a poll or the waker rings) it fetches again, once for all
 * slots that freed in the same turn. A NOTIFY while every slot is busy costs nothing: the next
 * freed slot fetches anyway. Before this, each of the type's 10 pg-boss workers ran its own fetch
 * per job, and every NOTIFY woke all of them.
 *
 * What pg-boss's `work()` did around each job is kept here:
 * - heartbeat: the held jobs of the type are refreshed with one fenced `touch` every half heartbeat;
 *   a job the touch no longer finds under this attempt (cancelled with `boss.cancel`, failed by the
 *   supervisor) has its signal aborted, as pg-boss's job signal was;
 * - expiry: the attempt's hard timeout ends a handler well before the job's `expireInSeconds`
 *   (queues.ts), and pg-boss's supervisor still expires a job whose process died;
 * - settlement: a finished job is completed (jobs finishing together share one fenced `complete`)
 *   unless its run completed it with its operation (src/operations/grouped.ts), a job whose attempt
 *   could not be recorded is failed, so its state says so;
 * - fair share: the fair-share slots fetch only jobs of priority 0 (src/quotas/fair-share.ts).
 */
export interface Fetcher {
  /** Fetch now if a slot is free (a NOTIFY, a due retry, a poll). */
  wake(): void;
  /** Stops fetching; resolves once no fetch is in flight. Held jobs stay held until they end. */
  stop(): Promise<void>;
  /** Waits until every finished job's completion or failure was written. */
  settled(): Promise<void>;
}

/** A fetched job as handed to a slot: its signal aborts when the heartbeat finds the claim gone. */
export interface FetchedJob {
  job: Job<JobData>;
  signal: AbortSignal;
}

export interface FetcherOptions {
  boss: PgBoss;
  queue: string;
  /** General slots: take the highest priority first. */
  slots: number;
  /** Fair-share slots: take only jobs of priority 0. */
  fairSlots: number;
  /** Seconds between fetches while nothing rings (the backstop poll). */
  pollSeconds: number;
  /**
   * Runs one job; a rejection fails the pg-boss job. Resolves true when it completed the job itself
   * (with the operation, src/operations/grouped.ts), else the fetcher completes it.
   */
  run: (fetched: FetchedJob) => Promise<unknown>;
  log: Logger;
}

interface Pool {
  size: number;
  busy: number;
  minPriority?: number;
}

interface Held {
  job: Job<JobData>;
  claim: AbortController;
}

export function startFetcher(o: FetcherOptions): Fetcher {
  const { boss, queue, log } = o;
  const general: Pool = { size: o.slots, busy: 0 };
  const fair: Pool = { size: o.fairSlots, busy: 0, minPriority: 0 };
  const held = new Map<string, Held>();
  const settling = new Set<Promise<void>>();
  let stopped = false;
  let scheduled = false;
  let again = false;
  let fetching: Promise<void> | null = null;
  let failing = false;
  let fairDry = false;

  const complete = coalesce(
    async (jobs: Job<JobData>[]) => {
      await boss.complete(queue, jobs);
      return jobs.map(() => undefined);
    },
    { max: 256 },
  );

  const free = (pool: Pool) => pool.size - pool.busy;

  /** Fetches for one pool; true when it came back full (more may be waiting). */
  const fetchInto = async (pool: Pool, batchSize: number) => {
    const options =
      pool.minPriority === undefined ? { batchSize } : { batchSize, minPriority: pool.minPriority };
    const jobs = await boss.fetch<JobData>(queue, options);
    for (const job of jobs) begin(pool, job);
    return jobs.length === batchSize;
  };

  const fetchLoop = async () => {
    do {
      again = false;
      const wanted = free(general);
      let full = false;
      if (wanted > 0) full = await fetchInto(general, wanted);
      // The fair-share slots matter only once the general ones are all busy (those take priority 0
      // first anyway), and not when the general fetch came back short (none left of any priority),
      // nor, until something new may have been queued (a NOTIFY, a poll), after a fair fetch that
      // found no priority-0 job.
      const fairWanted = free(fair);
      if (fairWanted > 0 && !stopped && !fairDry && free(general) === 0 && (wanted === 0 || full))
        fairDry = !(await fetchInto(fair, fairWanted));
    } while (again && !stopped);
  };

  const fetchNow = () => {
    scheduled = false;
    if (stopped) return;
    if (fetching) {
      again = true;
      return;
    }
    fetching = fetchLoop()
      .then(
        () => {
          if (failing) log.info('fetching jobs again', { queue });
          failing = false;
        },
        (error: Error) => {
          // Once per outage; the poll retries.
          if (!failing)
            log.warn('fetching jobs failed; retrying at the next poll', { queue, error: error.message });
          failing = true;
        },
      )
      .finally(() => {
        fetching = null;
      });
  };

  /**
   * Fetches once in the next turn for every wake of this one (slots freed together share it).
   * `news`: a job may have been queued (a NOTIFY, a poll, a due retry), not just a slot freed.
   */
  const wake = (news = true) => {
    if (news) fairDry = false;
    if (stopped || scheduled) return;
    if (fetching) {
      again = true;
      return;
    }
    if (free(general) === 0 && free(fair) === 0) return;
    scheduled = true;
    setImmediate(fetchNow);
  };

  const begin = (pool: Pool, job: Job<JobData>) => {
    pool.busy += 1;
    const claim = new AbortController();
    held.set(job.id, { job, claim });
    heartbeat.start(job.heartbeatSeconds);
    void o.run({ job, signal: claim.signal }).then(
      (completed) => settle(pool, job, () => (completed === true ? Promise.resolve() : complete(job))),
      (error: Error) => settle(pool, job, () => boss.fail(queue, job, { message: error.message })),
    );
  };

  const settle = (pool: Pool, job: Job<JobData>, write: () => Promise<unknown>) => {
    held.delete(job.id);
    const done: Promise<void> = write()
      .then(
        () => undefined,
        (error: Error) =>
          // The job stays active until pg-boss expires it; the operation's outcome is already written.
          log.warn('settling the pg-boss job failed', { queue, jobId: job.id, error: error.message }),
      )
      .finally(() => settling.delete(done));
    settling.add(done);
    // The slot frees at once: the settlement is grouped with others and waited for at shutdown.
    pool.busy -= 1;
    wake(false);
  };

  const heartbeat = heartbeatTimer(boss, queue, held, log);
  const poll = setInterval(() => wake(), Math.max(0.5, o.pollSeconds) * 1000);
  poll.unref();
  wake();

  return {
    wake: () => wake(),
    async stop() {
      stopped = true;
      clearInterval(poll);
      await fetching;
    },
    async settled() {
      heartbeat.stop();
      while (settling.size > 0) await Promise.all([...settling]);
    },
  };
}

/**
 * Refreshes the held jobs of a queue with one fenced `touch` every half heartbeat (the smallest of
 * the held jobs', as pg-boss does per batch), and aborts the claim of a job the touch did not find
 * under this attempt: cancelled (`boss.cancel`), failed or expired by pg-boss.
 */
function heartbeatTimer(boss: PgBoss, queue: string, held: Map<string, Held>, log: Logger) {
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

/** pg-boss's NOTIFY channel for a schema: 'pgboss_' and the first 24 hex digits of sha224 of its name. */
export const notifyChannel = (schema: string): string =>
  `pgboss_${createHash('sha224').update(schema).digest('hex').slice(0, 24)}`;
