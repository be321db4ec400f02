import { randomUUID } from 'node:crypto';
import { fromPrisma } from 'pg-boss';
import { retryWhileUnavailable } from '../db/unavailable.ts';
import type { Published } from '../events/bus.ts';
import { type Logger, lazyChild } from '../logger.ts';
import { observeEvent } from '../metrics/events.ts';
import type { Resources } from '../resources.ts';
import { safeFailure } from './failure.ts';
import type { GroupedTransitions, JobRef } from './grouped.ts';
import { ProgressThrottle } from './progress.ts';
import { type JobData, jobOptions } from './queues.ts';
import {
  ALL_OPERATIONS_CHANNEL,
  batchChannel,
  collectionChannel,
  type EventMessage,
  operationChannel,
  userChannel,
} from './record.ts';
import { type OperationType, retryDelayMs } from './registry.ts';
import * as transitions from './transitions.ts';

/** Why a handler's signal fired. */
export const ABORT = { cancelled: 'cancelled', timeout: 'timeout', shutdown: 'shutdown' } as const;

/** A running attempt, as the runner tracks it. */
export interface AttemptHandle {
  controller: AbortController;
  /** The pg-boss job the attempt runs under, completed with the operation when it completes. */
  job?: JobRef;
  /** Set once the job's completion was written with the operation's (the fetcher skips its own). */
  jobCompleted?: boolean;
  /** Called once the handler has returned (or was given up at the hard timeout), before the outcome is written. */
  handlerEnded?: () => void;
}

type Outcome =
  | { kind: 'completed'; result: unknown }
  | { kind: 'failed'; error: transitions.OperationError; retryable: boolean };

/**
 * One attempt: claim the operation (PENDING → PROCESSING), run the handler with throttled progress
 * under its soft and hard timeouts, then record the outcome: COMPLETED, a scheduled retry, FAILED,
 * or (at shutdown) a release for another worker. Every write is conditional on this attempt's claim,
 * so anything reported after a cancel or a repair is discarded. The claim and the completion go
 * through `grouped`, which shares one statement among the attempts of this process that start or
 * complete at the same moment.
 */
export async function runAttempt(
  r: Resources,
  type: OperationType,
  operationId: string,
  handle: AttemptHandle,
  parentLog: Logger,
  grouped: GroupedTransitions,
): Promise<void> {
  const started = await persist(() => grouped.start(operationId));
  if (!started) return; // cancelled before it started, or already finished
  publish(r, started);
  const { attempt, claimId } = started.operation;
  const claim = claimId as string;
  const { controller } = handle;
  // Carries the starting request's id and the batch into the worker's lines (absent when null).
  const { requestId, batchId } = started.operation;
  // Created on first use: most attempts log nothing, and a pino child serializes its bindings.
  const log = lazyChild(parentLog, () => ({
    operationId,
    type: type.name,
    attempt,
    requestId: requestId ?? undefined,
    batchId: batchId ?? undefined,
  }));
  log.debug('attempt started');
  controller.signal.addEventListener(
    'abort',
    () => log.info('handler signal aborted', { reason: String(controller.signal.reason) }),
    { once: true },
  );

  let failedProgressWrites = 0;
  const throttle = new ProgressThrottle(
    r.config.progressIntervalMs,
    async (step) => {
      const applied = await transitions.progress(r.db, operationId, claim, step);
      if (applied) publish(r, applied);
      return applied !== null;
    },
    () => controller.abort(ABORT.cancelled),
    (error) => {
      // Once per attempt: during a database outage every step would fail the same way.
      failedProgressWrites += 1;
      if (failedProgressWrites === 1)
        log.warn('progress write failed (later failures not logged)', { error });
    },
  );

  const { softTimeoutSeconds, hardTimeoutSeconds } = type.policy;
  const hardAt = Date.now() + hardTimeoutSeconds * 1000;
  let hardTimer: NodeJS.Timeout | undefined;
  let onHardTimeout: () => void = () => {};
  const hardTimeout = new Promise<Outcome>((resolve) => {
    onHardTimeout = () => {
      controller.abort(ABORT.timeout);
      resolve({
        kind: 'failed',
        error: {
          code: 'HARD_TIMEOUT',
          message: `no result within the hard timeout of ${hardTimeoutSeconds} s`,
        },
        retryable: true,
      });
    };
  });
  const startHardTimer = () => {
    hardTimer = setTimeout(onHardTimeout, Math.max(0, hardAt - Date.now()));
  };
  let softEvent: Promise<unknown> | undefined;
  const softTimer = setTimeout(() => {
    // The hard timer starts here, for the same moment: one timer per attempt that ends in time.
    if (!hardTimer) startHardTimer();
    // Recorded before the handler is asked to stop, so the event always precedes the outcome.
    softEvent = transitions
      .softTimeout(r.db, operationId, claim, softTimeoutSeconds)
      .then(
        (applied) => applied && publish(r, applied),
        (error) => log.warn('soft timeout event failed', { error }),
      )
      .finally(() => controller.abort(ABORT.timeout));
  }, softTimeoutSeconds * 1000);
  if (softTimeoutSeconds > hardTimeoutSeconds) startHardTimer();

  const handler = (async (): Promise<Outcome> => {
    try {
      // A large input is not in the claimed row (record.ts): read once, for the handler.
      const stored = started.operation.input;
      const input = type.input.parse(stored !== undefined ? stored : await readInput(r, operationId));
      const result = await type.run(input, {
        operationId,
        ownerId: started.operation.ownerId,
        attempt,
        signal: controller.signal,
        progress: (progress) => throttle.report(progress),
        logger: log,
        db: r.db,
        config: r.config,
        claimId: claim,
      });
      return { kind: 'completed', result };
    } catch (error) {
      return {
        kind: 'failed',
        error: describe(error, controller.signal, log),
        retryable: isRetryable(error),
      };
    }
  })();
  // A handler that ignores its signal cannot hold the attempt past the hard timeout.
  const outcome = await Promise.race([handler, hardTimeout]);
  // The worker's slot may take the next job while this outcome is written (src/operations/fetcher.ts).
  handle.handlerEnded?.();
  clearTimeout(softTimer);
  clearTimeout(hardTimer);
  await softEvent;

  const reason = controller.signal.aborted ? controller.signal.reason : undefined;
  if (reason === ABORT.cancelled) {
    throttle.close();
    return; // already CANCELLED in the database; whatever the handler did is discarded
  }
  await throttle.flush();
  let applied: transitions.Applied | null;
  if (reason === ABORT.shutdown && outcome.kind === 'failed') {
    applied = await persist(() =>
      endAttempt(
        r,
        type,
        { operationId, claimId: claim, attempt },
        {
          error: { code: 'WORKER_SHUTDOWN', message: 'the worker shut down; released for another worker' },
          retryable: true,
          release: true,
        },
      ),
    );
  } else if (outcome.kind === 'completed') {
    applied = await persist(() => grouped.complete(operationId, claim, outcome.result, handle.job));
    if (handle.job) handle.jobCompleted = true;
  } else {
    applied = await persist(() =>
      endAttempt(r, type, { operationId, claimId: claim, attempt }, { ...outcome, release: false }),
    );
  }
  if (!applied) {
    log.info('result discarded: the operation is no longer held by this attempt');
    return;
  }
  publish(r, applied);
  if (outcome.kind === 'failed')
    log.warn('attempt failed', { error: outcome.error, next: applied.event.kind });
}

/**
 * Ends a failed (or released) attempt: back to PENDING with a new job at the next attempt's time
 * when the policy allows another attempt, otherwise FAILED. The requeue and its job are one
 * transaction. Also used by the reconciler for attempts whose worker was lost.
 */
export async function endAttempt(
  r: Resources,
  type: OperationType,
  held: { operationId: string; claimId: string; attempt: number },
  end: { error: transitions.OperationError; retryable: boolean; release: boolean },
): Promise<transitions.Applied | null> {
  const { operationId, claimId, attempt } = held;
  const again = end.release || (end.retryable && attempt <= type.policy.retryLimit);
  if (!again) return transitions.fail(r.db, operationId, claimId, end.error);
  const jobId = randomUUID();
  const at = new Date(Date.now() + (end.release ? 0 : retryDelayMs(type.policy, attempt)));
  const applied = await r.db.$transaction(async (tx) => {
    const requeued = await transitions.requeueAttempt(tx, operationId, claimId, {
      jobId,
      at,
      error: end.error,
      release: end.release,
    });
    if (requeued) {
      const data: JobData = { operationId };
      await r.boss.send(type.name, data, {
        id: jobId,
        startAfter: at,
        ...jobOptions(type.policy),
        db: fromPrisma(tx),
      });
    }
    return requeued;
  });
  if (applied) r.waker.wakeAt(type.name, at);
  return applied;
}

/** The operation's stored input (waiting out a database outage, like every write here). */
const readInput = async (r: Resources, operationId: string) =>
  (
    await persist(() =>
      r.db.operation.findUniqueOrThrow({ where: { id: operationId }, select: { input: true } }),
    )
  ).input;

/**
 * Publishes a committed event to its operation's subscribers, to the live lists that may show it
 * (its owner's, its collection's, the admins'), and to its batch's coordinator; and counts it in the
 * metrics: every committed event passes here (or through `publishCommittedTogether`) once.
 */
export function publish(r: Resources, message: EventMessage): void {
  publishCommittedTogether(r, [message]);
}

/**
 * `publish` for several events of one operation committed in one transaction (a batch's ITEM
 * events, up to 500 per statement), in order: each goes to the operation's subscribers (gapless per
 * operation) and to its batch's coordinator, but only the last goes to the live lists. A list never
 * saw the states in between (they were committed together), and lists deliver an operation's state,
 * coalescing intermediate ones (src/operations/live-updates.ts); for a batch of 1,000 items that is
 * ~6,000 publishes (and serializations of the batch's row) fewer.
 */
export function publishCommittedTogether(r: Resources, messages: readonly EventMessage[]): void {
  const published: Published[] = [];
  for (const [index, message] of messages.entries()) {
    observeEvent(r.metrics, message);
    const { batchId, ownerId, collectionId } = message.operation;
    published.push({ channel: operationChannel(message.operation.id), payload: message });
    // Keyed by operation: while Redis is unreachable the latest message of each operation is kept
    // (live lists reconcile from the database anyway).
    const key = `:${message.operation.id}`;
    if (index === messages.length - 1) {
      const lists = [
        userChannel(ownerId),
        collectionId && collectionChannel(collectionId),
        ALL_OPERATIONS_CHANNEL,
      ];
      for (const channel of lists)
        if (channel) published.push({ channel, payload: message, key: channel + key });
    }
    if (batchId)
      published.push({
        channel: batchChannel(batchId),
        payload: { operationId: message.operation.id },
        key: `${batchChannel(batchId)}:${message.operation.id}`,
      });
  }
  // One socket write to Redis for all of them.
  r.bus.publishMany(published);
}

/** Retries a database write for up to a minute while the database is unreachable. */
export const persist = <T>(write: () => Promise<T>, deadlineMs = 60_000): Promise<T> =>
  retryWhileUnavailable(write, { deadlineMs });

/** Now in src/db/unavailable.ts; re-exported for existing callers. */
export { isConnectionError } from '../db/unavailable.ts';

function isRetryable(error: unknown): boolean {
  return !(error instanceof Error && (error as Error & { retryable?: unknown }).retryable === false);
}

/**
 * The error recorded for a failed attempt: a stable code and a message safe to show clients
 * (src/operations/failure.ts). When the handler's own message may not be shown (a database,
 * driver, system or parser error, or an error without a code), the original goes to `log` only.
 */
export function describe(error: unknown, signal: AbortSignal, log?: Logger): transitions.OperationError {
  if (signal.aborted && signal.reason === ABORT.timeout) {
    return { code: 'SOFT_TIMEOUT', message: 'the handler stopped after its soft timeout' };
  }
  if (signal.aborted) return { code: 'ABORTED', message: `aborted: ${String(signal.reason)}` };
  const { code, message, exposed } = safeFailure(error);
  if (!exposed) log?.warn('handler error recorded with a safe message', { code, error });
  return { code, message };
}
