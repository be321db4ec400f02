import { createHash } from 'node:crypto';
import type { Job, PgBoss } from 'pg-boss';
import type { Logger } from '../logger.ts';
import { coalesce } from './coalesce.ts';
import { type Held, heartbeatTimer } from './heartbeat.ts';
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
 * Two things keep a slot from waiting on round trips that are not its job's (with trivial handlers
 * they were most of a job's time):
 * - a slot counts a running handler: it frees once the handler returns, while the outcome is
 *   written (at most `slots` such writes per pool at once; beyond, the slot frees when its run ends);
 * - while jobs take a slot briefly (SHORT_SLOT_MS), up to `slots` more jobs are fetched ahead and
 *   handed to slots the moment they free, so the next claims go out with no fetch in between.
 *   At shutdown, jobs fetched ahead go back to pg-boss for any worker.
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
  /**
   * Stops fetching; resolves once no fetch is in flight and the jobs fetched ahead were given back.
   * Running jobs stay held until they end.
   */
  stop(): Promise<void>;
  /** Waits until every finished job's completion or failure was written. */
  settled(): Promise<void>;
}

/** A fetched job as handed to a slot: its signal aborts when the heartbeat finds the claim gone. */
export interface FetchedJob {
  job: Job<JobData>;
  signal: AbortSignal;
  /**
   * Called by the run once its handler has returned: the slot then frees for the next job while the
   * run writes the outcome (slots count handlers running, not writes in flight). Without the call,
   * the slot frees when the run ends.
   */
  handlerEnded: () => void;
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
  /** Slots taken: handlers running, and runs that have not ended without calling handlerEnded. */
  busy: number;
  /** Runs whose handler ended (the slot freed early) still writing their outcome; at most `size`. */
  ending: number;
  minPriority?: number;
}

/**
 * The average time a general slot is taken per job (claim and handler, in ms) under which jobs are
 * fetched ahead, as graphile-worker's local queue does: the next claims then go out as soon as slots
 * free, without a fetch's round trip between. A job fetched ahead waits about one such time for a
 * slot (at most a slot's current job); for longer jobs nothing is fetched ahead, so another process
 * with free slots takes them.
 */
const SHORT_SLOT_MS = 100;

export function startFetcher(o: FetcherOptions): Fetcher {
  const { boss, queue, log } = o;
  const general: Pool = { size: o.slots, busy: 0, ending: 0 };
  const fair: Pool = { size: o.fairSlots, busy: 0, ending: 0, minPriority: 0 };
  const held = new Map<string, Held>();
  const settling = new Set<Promise<void>>();
  let stopped = false;
  let scheduled = false;
  let again = false;
  let fetching: Promise<void> | null = null;
  let failing = false;
  let fairDry = false;
  /** Jobs fetched ahead for the general slots, oldest first (held: the heartbeat refreshes them). */
  const ahead: Held[] = [];
  /** Moving average of how long a general slot is taken per job (claim and handler), in ms. */
  let slotMs = Number.POSITIVE_INFINITY;

  const complete = coalesce(
    async (jobs: Job<JobData>[]) => {
      await boss.complete(queue, jobs);
      return jobs.map(() => undefined);
    },
    { max: 256 },
  );

  const free = (pool: Pool) => pool.size - pool.busy;
  /** How many more jobs to fetch ahead: up to the general slots' number, while jobs take them briefly. */
  const room = () => (slotMs <= SHORT_SLOT_MS ? general.size - ahead.length : 0);

  /** Fetches for one pool (and ahead of it); true when it came back full (more may be waiting). */
  const fetchInto = async (pool: Pool, batchSize: number) => {
    const options =
      pool.minPriority === undefined ? { batchSize } : { batchSize, minPriority: pool.minPriority };
    const jobs = await boss.fetch<JobData>(queue, options);
    for (const job of jobs) {
      const entry: Held = { job, claim: new AbortController() };
      held.set(job.id, entry);
      heartbeat.start(job.heartbeatSeconds);
      if (free(pool) > 0 && !stopped) begin(pool, entry);
      else ahead.push(entry);
    }
    return jobs.length === batchSize;
  };

  /** Hands jobs fetched ahead to the free general slots, at once (their claims then group together). */
  const takeAhead = () => {
    while (free(general) > 0 && !stopped) {
      const entry = ahead.shift();
      if (!entry) return;
      // Cancelled or expired in pg-boss while it waited here (the heartbeat found it gone): not ours.
      if (entry.claim.signal.aborted) held.delete(entry.job.id);
      else begin(general, entry);
    }
  };

  const fetchLoop = async () => {
    do {
      again = false;
      const wanted = free(general) + room();
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
    if (free(general) === 0 && free(fair) === 0 && room() === 0) return;
    scheduled = true;
    setImmediate(fetchNow);
  };

  const begin = (pool: Pool, { job, claim }: Held) => {
    pool.busy += 1;
    const takenAt = performance.now();
    // The slot frees when the handler ends, unless `size` runs of the pool are still writing their
    // outcome (which bounds the writes waiting); then when the run ends.
    let slotHeld = true;
    let early = false;
    const freeSlot = () => {
      if (!slotHeld) return;
      slotHeld = false;
      pool.busy -= 1;
      const ms = performance.now() - takenAt;
      slotMs = Number.isFinite(slotMs) ? slotMs * 0.8 + ms * 0.2 : ms;
      takeAhead();
      wake(false);
    };
    const handlerEnded = () => {
      if (!slotHeld || pool.ending >= pool.size) return;
      early = true;
      pool.ending += 1;
      freeSlot();
    };
    const ended = (write: () => Promise<unknown>) => {
      if (early) pool.ending -= 1;
      settle(job, write);
      freeSlot();
    };
    void o.run({ job, signal: claim.signal, handlerEnded }).then(
      (completed) => ended(() => (completed === true ? Promise.resolve() : complete(job))),
      (error: Error) => ended(() => boss.fail(queue, job, { message: error.message })),
    );
  };

  /** Writes a run's job settlement (grouped with others; waited for at shutdown). */
  const settle = (job: Job<JobData>, write: () => Promise<unknown>) => {
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
  };

  /**
   * Gives jobs fetched ahead back to pg-boss for any worker (at shutdown): cancelled under the
   * attempt they were fetched with, then resumed as new. If that fails, the job stays active without
   * heartbeat until pg-boss expires it or the reconciler gives its operation a new one.
   */
  const release = async (entries: Held[]) => {
    if (entries.length === 0) return;
    for (const entry of entries) held.delete(entry.job.id);
    try {
      const jobs = entries.map((entry) => entry.job);
      await boss.cancel(queue, jobs);
      await boss.resume(
        queue,
        jobs.map((job) => job.id),
      );
    } catch (error) {
      log.warn('releasing jobs fetched ahead failed', { queue, error: (error as Error).message });
    }
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
      await release(ahead.splice(0));
    },
    async settled() {
      heartbeat.stop();
      while (settling.size > 0) await Promise.all([...settling]);
    },
  };
}

/** pg-boss's NOTIFY channel for a schema: 'pgboss_' and the first 24 hex digits of sha224 of its name. */
export const notifyChannel = (schema: string): string =>
  `pgboss_${createHash('sha224').update(schema).digest('hex').slice(0, 24)}`;
