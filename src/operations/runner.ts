import type { Job, PgBoss } from 'pg-boss';
import { observeRepairs } from '../metrics/events.ts';
import type { Resources } from '../resources.ts';
import { ABORT, type AttemptHandle, runAttempt } from './attempt.ts';
import { bossQuery, groupedTransitions } from './grouped.ts';
import type { JobData } from './queues.ts';
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

/** Thrown to pg-boss after an attempt ended badly, so the job's state says so too. */
class AttemptFailed extends Error {
  override name = 'AttemptFailed';
}

export async function startRunner(r: Resources): Promise<Runner> {
  const running = new Map<string, Running>();
  const log = r.logger.child({ component: 'runner' });
  const grouped = groupedTransitions(bossQuery(r.boss), r.config.instanceId);

  const unsubscribe = await r.bus.subscribe(CANCEL_CHANNEL, (message) => {
    const { operationId } = message as { operationId: string };
    running.get(operationId)?.controller.abort(ABORT.cancelled);
  });

  const work =
    (type: OperationType) =>
    async ([job]: Job<JobData>[]) => {
      if (!job) return;
      const controller = new AbortController();
      const operationId = job.data.operationId;
      // pg-boss aborts the job's signal on cancel (through the heartbeat), expiry and shutdown.
      const onJobAbort = () => controller.abort(ABORT.cancelled);
      job.signal.addEventListener('abort', onJobAbort, { once: true });
      const entry: Running = { controller, done: Promise.resolve() };
      entry.done = runAttempt(r, type, operationId, entry, log, grouped);
      running.set(operationId, entry);
      r.metrics.running.inc({ type: type.name });
      try {
        await entry.done;
      } catch (error) {
        log.error('attempt could not be recorded; the reconciler will repair it', { operationId, error });
        throw new AttemptFailed('attempt could not be recorded');
      } finally {
        r.metrics.running.dec({ type: type.name });
        running.delete(operationId);
        job.signal.removeEventListener('abort', onJobAbort);
      }
    };

  // One single-slot pg-boss worker per concurrency slot, each fetching again as soon as it finishes
  // a job: with batch size 1, pg-boss would otherwise sleep until the next poll (30 s with NOTIFY)
  // after every job, and a backlog would drain one job per worker per poll. Every slot takes the
  // highest fair-share priority first (src/quotas/fair-share.ts); the fair-share slots take only
  // jobs of priority 0 (queued while their owner had nothing else unfinished), so a user's first
  // operation finds a free slot however many long operations other users keep queued.
  for (const type of r.registry.jobTypes()) {
    const handle = work(type);
    for (let slot = 0; slot < r.config.workerConcurrency; slot += 1) await addSlot(r, type, handle);
    for (let slot = 0; slot < r.config.fairShareSlots; slot += 1) {
      await addSlot(r, type, handle, { minPriority: 0 });
    }
  }

  const reconciler = startReconciler(r);

  return {
    running: () => [...running.keys()],
    async stop(graceMs) {
      reconciler.stop();
      const types = r.registry.jobTypes().map((type) => type.name);
      await Promise.all(types.map((name) => offWork(r.boss, name)));
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
      await reconciler.idle();
      unsubscribe();
    },
  };
}

/** Starts one single-slot pg-boss worker for a type that fetches again after every job. */
async function addSlot(
  r: Resources,
  type: OperationType,
  handle: (jobs: Job<JobData>[]) => Promise<void>,
  fetch: { minPriority?: number } = {},
) {
  let workerId: string | undefined;
  workerId = await r.boss.work<JobData>(
    type.name,
    {
      batchSize: 1,
      localConcurrency: 1,
      pollingIntervalSeconds: r.config.bossPollingSeconds,
      notifyPollingIntervalSeconds: r.config.bossNotifyPollingSeconds,
      ...fetch,
    },
    async (jobs: Job<JobData>[]) => {
      try {
        await handle(jobs);
      } finally {
        if (workerId) r.boss.notifyWorker(workerId);
      }
    },
  );
  const id = workerId;
  r.waker.register(type.name, () => r.boss.notifyWorker(id));
  r.boss.notifyWorker(id);
}

const offWork = (boss: PgBoss, name: string) => boss.offWork(name, { wait: false });

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
