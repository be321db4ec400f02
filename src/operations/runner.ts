import type { Job, PgBoss } from 'pg-boss';
import type { Resources } from '../resources.ts';
import { ProgressThrottle } from './progress.ts';
import type { JobData } from './queues.ts';
import { CANCEL_CHANNEL, operationChannel } from './record.ts';
import type { OperationType } from './registry.ts';
import * as transitions from './transitions.ts';

/** Workers for every registered type in this process. */
export interface Runner {
  /** Operation ids running here now. */
  running(): string[];
  /** Stops taking jobs, waits up to `graceMs` for running handlers, then aborts the rest. */
  stop(graceMs: number): Promise<void>;
}

interface Running {
  controller: AbortController;
  done: Promise<void>;
}

/** Why a handler's signal fired. */
const CANCELLED = 'cancelled';

/** How long shutdown waits for handlers after aborting them. */
const ABORT_WAIT_MS = 5000;

/** Thrown to pg-boss after an attempt is recorded FAILED, so the job's state says so too. */
class AttemptFailed extends Error {
  override name = 'AttemptFailed';
}

export async function startRunner(r: Resources): Promise<Runner> {
  const running = new Map<string, Running>();
  const log = r.logger.child({ component: 'runner' });

  const unsubscribe = await r.bus.subscribe(CANCEL_CHANNEL, (message) => {
    const { operationId } = message as { operationId: string };
    running.get(operationId)?.controller.abort(CANCELLED);
  });

  const work =
    (type: OperationType) =>
    async ([job]: Job<JobData>[]) => {
      if (!job) return;
      const controller = new AbortController();
      const operationId = job.data.operationId;
      const onJobAbort = () => controller.abort(job.signal.reason ?? CANCELLED);
      job.signal.addEventListener('abort', onJobAbort, { once: true });
      const done = runAttempt(r, type, operationId, controller, log);
      running.set(operationId, { controller, done });
      try {
        await done;
      } finally {
        running.delete(operationId);
        job.signal.removeEventListener('abort', onJobAbort);
      }
    };

  for (const type of r.registry.list()) {
    await r.boss.work<JobData>(
      type.name,
      {
        batchSize: 1,
        localConcurrency: r.config.workerConcurrency,
        pollingIntervalSeconds: r.config.bossPollingSeconds,
        notifyPollingIntervalSeconds: r.config.bossNotifyPollingSeconds,
      },
      work(type),
    );
  }

  return {
    running: () => [...running.keys()],
    async stop(graceMs) {
      const types = r.registry.list().map((type) => type.name);
      await Promise.all(types.map((name) => offWork(r.boss, name)));
      // Settled, not all: one attempt failing must not cut the grace period short for the others.
      const all = Promise.allSettled([...running.values()].map((entry) => entry.done));
      const timedOut = await Promise.race([
        all.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(resolve, graceMs, true).unref()),
      ]);
      if (timedOut) {
        for (const entry of running.values()) entry.controller.abort('shutdown');
        // A handler that ignores its signal cannot hold the process: its late result is discarded.
        await Promise.race([all, new Promise((resolve) => setTimeout(resolve, ABORT_WAIT_MS).unref())]);
      }
      unsubscribe();
    },
  };
}

const offWork = (boss: PgBoss, name: string) => boss.offWork(name, { wait: false });

/**
 * One attempt: claim the operation (PENDING → PROCESSING), run the handler with throttled
 * progress, then record COMPLETED or FAILED — each write conditional on this attempt still
 * holding the operation, so anything reported after a cancel is discarded.
 */
async function runAttempt(
  r: Resources,
  type: OperationType,
  operationId: string,
  controller: AbortController,
  parentLog: Resources['logger'],
): Promise<void> {
  const started = await transitions.start(r.db, operationId, r.config.instanceId);
  if (!started) return; // cancelled before it started, or already finished
  r.bus.publish(operationChannel(operationId), started);
  const attempt = started.operation.attempt;
  const log = parentLog.child({ operationId, type: type.name, attempt });

  controller.signal.addEventListener(
    'abort',
    () => log.info('handler signal aborted', { reason: String(controller.signal.reason) }),
    { once: true },
  );
  const throttle = new ProgressThrottle(
    r.config.progressIntervalMs,
    async (step) => {
      const applied = await transitions.progress(r.db, operationId, attempt, step);
      if (applied) r.bus.publish(operationChannel(operationId), applied);
      return applied !== null;
    },
    () => controller.abort(CANCELLED),
    (error) => log.warn('progress write failed', { error }),
  );

  let outcome: { ok: true; result: unknown } | { ok: false; error: unknown };
  try {
    const input = type.input.parse(started.operation.input);
    const result = await type.run(input, {
      operationId,
      attempt,
      signal: controller.signal,
      progress: (progress) => throttle.report(progress),
      logger: log,
      db: r.db,
    });
    outcome = { ok: true, result };
  } catch (error) {
    outcome = { ok: false, error };
  }
  if (controller.signal.aborted && controller.signal.reason === CANCELLED) {
    throttle.close();
    return; // already CANCELLED in the database; whatever the handler did is discarded
  }
  await throttle.flush();
  const applied = outcome.ok
    ? await transitions.complete(r.db, operationId, attempt, outcome.result)
    : await transitions.fail(r.db, operationId, attempt, describe(outcome.error, controller.signal));
  if (!applied) {
    log.info('result discarded: the operation is no longer held by this attempt');
    return;
  }
  r.bus.publish(operationChannel(operationId), applied);
  if (!outcome.ok) {
    log.warn('operation failed', { error: outcome.error });
    throw new AttemptFailed(applied.operation.error ? JSON.stringify(applied.operation.error) : 'failed');
  }
}

/** The error recorded on a failed operation: a stable code and a message safe to show clients. */
function describe(error: unknown, signal: AbortSignal): transitions.OperationError {
  if (signal.aborted) {
    const reason = String(signal.reason ?? 'aborted');
    return { code: reason === 'shutdown' ? 'WORKER_SHUTDOWN' : 'ABORTED', message: `aborted: ${reason}` };
  }
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    return {
      code: typeof code === 'string' ? code : 'HANDLER_ERROR',
      message: error.message || error.name,
    };
  }
  return { code: 'HANDLER_ERROR', message: String(error) };
}
