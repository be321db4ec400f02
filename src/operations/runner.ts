import { observeRepairs } from '../metrics/events.ts';
import type { Resources } from '../resources.ts';
import { ABORT, type AttemptHandle, runAttempt } from './attempt.ts';
import { type FetchedJob, type Fetcher, notifyChannel, startFetcher } from './fetcher.ts';
import { bossQuery, groupedTransitions } from './grouped.ts';
import { reconcile } from './reconcile.ts';
import { CANCEL_CHANNEL } from './record.ts';
import type { OperationType } from './registry.ts';

/** Workers for every registered type in this process. */
export interface Runner {
  /** Operation ids running here now. */
  running(): string[];
  /** Stops taking jobs, waits up to `graceMs` for running handlers, then releases the rest. */
  stop(graceMs: number): Promise<void>;
}

interface Running extends AttemptHandle {
  done: Promise<void>;
}

/** How long shutdown waits for handlers after aborting them. */
const ABORT_WAIT_MS = 5000;

/** Thrown to the fetcher after an attempt ended badly: it fails the pg-boss job, so its state says so too. */
class AttemptFailed extends Error {
  override name = 'AttemptFailed';
}

export async function startRunner(r: Resources): Promise<Runner> {
  const running = new Map<string, Running>();
  const log = r.logger.child({ component: 'runner' });
  const grouped = groupedTransitions(bossQuery(r.boss), r.config.instanceId, r.config.bossSchema);

  const unsubscribe = await r.bus.subscribe(CANCEL_CHANNEL, (message) => {
    const { operationId } = message as { operationId: string };
    running.get(operationId)?.controller.abort(ABORT.cancelled);
  });

  const work =
    (type: OperationType) =>
    async ({ job, signal, handlerEnded }: FetchedJob): Promise<boolean> => {
      const controller = new AbortController();
      const operationId = job.data.operationId;
      // The fetcher aborts the job's signal when its heartbeat finds the job cancelled or expired.
      const onJobAbort = () => controller.abort(ABORT.cancelled);
      signal.addEventListener('abort', onJobAbort, { once: true });
      const entry: Running = {
        controller,
        done: Promise.resolve(),
        job: { name: job.name, id: job.id, retryCount: job.retryCount },
        handlerEnded,
      };
      entry.done = runAttempt(r, type, operationId, entry, log, grouped);
      running.set(operationId, entry);
      r.metrics.running.inc({ type: type.name });
      try {
        await entry.done;
        return entry.jobCompleted === true;
      } catch (error) {
        log.error('attempt could not be recorded; the reconciler will repair it', { operationId, error });
        throw new AttemptFailed('attempt could not be recorded');
      } finally {
        r.metrics.running.dec({ type: type.name });
        running.delete(operationId);
        signal.removeEventListener('abort', onJobAbort);
      }
    };

  // One fetcher per type (src/operations/fetcher.ts): one fetch for all the slots free at a moment.
  // Every general slot takes the highest fair-share priority first (src/quotas/fair-share.ts); the
  // fair-share slots take only jobs of priority 0 (queued while their owner had nothing else
  // unfinished), so a user's first operation finds a free slot however many long operations other
  // users keep queued.
  //
  // pg-boss's NOTIFY names the queue of a job due now: it wakes that type's fetcher only. After the
  // listener reconnects, every fetcher fetches once (notifications may have been missed).
  const fetchers = new Map<string, Fetcher>();
  const listener = await listen(r, fetchers).catch((error: Error) => {
    log.warn('LISTEN for new jobs failed; polling only', { error: error.message });
    return null;
  });
  const pollSeconds = listener ? r.config.bossNotifyPollingSeconds : r.config.bossPollingSeconds;
  for (const type of r.registry.jobTypes()) {
    const fetcher = startFetcher({
      boss: r.boss,
      queue: type.name,
      slots: r.config.workerConcurrency,
      fairSlots: r.config.fairShareSlots,
      pollSeconds,
      run: work(type),
      log,
    });
    fetchers.set(type.name, fetcher);
    r.waker.register(type.name, fetcher.wake);
  }

  const reconciler = startReconciler(r);

  return {
    running: () => [...running.keys()],
    async stop(graceMs) {
      reconciler.stop();
      await Promise.all([...fetchers.values()].map((fetcher) => fetcher.stop()));
      await listener?.close().catch(() => undefined);
      // Settled, not all: one attempt failing must not cut the grace period short for the others.
      const all = Promise.allSettled([...running.values()].map((entry) => entry.done));
      const timedOut = await Promise.race([
        all.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(resolve, graceMs, true).unref()),
      ]);
      if (timedOut) {
        // Released attempts go back to PENDING with a new job, for another worker.
        for (const entry of running.values()) entry.controller.abort(ABORT.shutdown);
        await Promise.race([all, new Promise((resolve) => setTimeout(resolve, ABORT_WAIT_MS).unref())]);
      }
      // The ended attempts' pg-boss jobs completed (or failed), before pg-boss itself stops.
      await Promise.all([...fetchers.values()].map((fetcher) => fetcher.settled()));
      await reconciler.idle();
      unsubscribe();
    },
  };
}

/** Listens on pg-boss's NOTIFY channel (its own connection) and wakes the named queue's fetcher. */
async function listen(r: Resources, fetchers: Map<string, Fetcher>) {
  const db = r.boss.getDb();
  if (!db.listen) return null;
  return db.listen(
    notifyChannel(r.config.bossSchema),
    (queue) => fetchers.get(queue)?.wake(),
    () => {
      for (const fetcher of fetchers.values()) fetcher.wake();
    },
  );
}

/** Runs the reconciler every `reconcileIntervalMs` in this process (never two passes at once). */
function startReconciler(r: Resources) {
  const log = r.logger.child({ component: 'reconciler' });
  let pass: Promise<void> = Promise.resolve();
  let stopped = false;
  const timer = setInterval(() => {
    if (stopped) return;
    pass = pass.then(async () => {
      try {
        const repairs = await reconcile(r, { minAgeSeconds: r.config.reconcileMinAgeSeconds });
        for (const repair of repairs) log.warn('repaired operation', { ...repair });
        observeRepairs(r.metrics, repairs);
      } catch (error) {
        log.warn('reconcile pass failed', { error: (error as Error).message });
      }
    });
  }, r.config.reconcileIntervalMs);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
    idle: () => pass,
  };
}
