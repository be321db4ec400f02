import { Repeater } from 'graphql-yoga';
import type { Viewer } from '../auth/viewer.ts';
import { isConnectionError } from '../db/unavailable.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { EventBus } from '../events/bus.ts';
import { createFallbackPoller, type FallbackPoller } from '../events/fallback.ts';
import type { Operation, OperationEvent } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import { canView, GUARD_SELECT } from './access.ts';
import { fromMessage, liveRead, visibilityCheck } from './live-visibility.ts';
import { type EventMessage, operationChannel } from './record.ts';
import { isTerminal } from './status.ts';

/** One message of `operationUpdated`. */
export interface OperationUpdate {
  /** The sequence this message brings the client up to. */
  sequence: number;
  /** The event, or null for the first message (the current state). */
  event: OperationEvent | null;
  /** The latest state of the operation the server knew when it sent this message. */
  operation: Operation;
}

/**
 * The stream ended early; the client resumes without loss by subscribing again with
 * `afterSequence` (everything up to it was delivered). Reaches clients as a GraphQL error with
 * `extensions.code`, `extensions.retryable: true` and `extensions.afterSequence`.
 */
export class ResubscribeError extends Error {
  override name = 'ResubscribeError';
  constructor(
    readonly code: 'SUBSCRIBER_TOO_SLOW' | 'SERVICE_UNAVAILABLE' | 'SERVER_SHUTTING_DOWN',
    message: string,
    readonly afterSequence: number,
  ) {
    super(message);
  }
}

/** Events read from the database per query when replaying or filling a gap. */
const PAGE_SIZE = 500;

/** One fallback poller per bus (that is, per running app), created on first use. */
const pollers = new WeakMap<EventBus, FallbackPoller>();
function pollerFor(r: Resources): FallbackPoller {
  let poller = pollers.get(r.bus);
  if (!poller) {
    poller = createFallbackPoller({
      bus: r.bus,
      logger: r.logger.child({ component: 'subscription-fallback' }),
      read: async (ids) => {
        const rows = await r.db.operation.findMany({
          where: { id: { in: ids } },
          select: { id: true, sequence: true },
        });
        return new Map(rows.map((row) => [row.id, row.sequence]));
      },
    });
    pollers.set(r.bus, poller);
  }
  return poller;
}

/**
 * The stream behind `operationUpdated`: subscribe to the operation's channel first, then read
 * the snapshot (or replay events after `afterSequence`) from the database, then deliver live
 * events in sequence order — dropping what was already delivered, filling any gap from the
 * database — and finish after a terminal state.
 *
 * While the bus is disconnected, a shared poller reads the operation's sequence every 500 ms and
 * the stream reads whatever it has not delivered yet; once more after the bus reconnects.
 *
 * Backpressure: one loop delivers, one update at a time, and waits until the transport has taken
 * each one (graphql-ws awaits the socket write, SSE waits for 'drain'), so a slow client only
 * slows its own loop. Live messages arriving meanwhile wait in a queue bounded by
 * `config.subscriptionMaxBacklog`; when it is full the subscription ends with SUBSCRIBER_TOO_SLOW
 * and the sequence to resume after. Publishers never wait for subscribers.
 *
 * Visibility (src/auth/visibility.ts) is checked on subscribe and again on every message: a viewer
 * who sees the operation only through its collection (public, or theirs) stops receiving it — the
 * stream ends with NOT_FOUND — at the first message after that collection is no longer visible to
 * them (one primary-key lookup per message for all such viewers of the process together; owners
 * and admins cost none: src/operations/live-visibility.ts).
 */
export async function operationUpdates(
  r: Resources,
  viewer: Viewer,
  id: string,
  displayId: string,
  afterSequence: number | null | undefined,
): Promise<AsyncIterable<OperationUpdate>> {
  if (afterSequence !== null && afterSequence !== undefined && afterSequence < 0) {
    throw new ValidationError([{ path: ['afterSequence'], message: 'must be 0 or more' }]);
  }
  const found = await r.db.operation.findUnique({ where: { id }, include: GUARD_SELECT });
  if (!found || !canView(viewer, found)) throw new NotFoundError('Operation', displayId);
  const maxBacklog = r.config.subscriptionMaxBacklog;

  return new Repeater<OperationUpdate>(async (push, stop) => {
    /** The last sequence handed to the client (what it resumes after if the stream ends early). */
    let delivered = afterSequence ?? 0;
    let finished = false;
    /** Live messages waiting for the loop: the per-subscriber buffer. */
    const queue: EventMessage[] = [];
    /** The database holds events not delivered yet (learnt from the fallback poller). */
    let behind = false;
    let wake: (() => void) | undefined;
    const poke = () => {
      const resolve = wake;
      wake = undefined;
      resolve?.();
    };
    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      queue.length = 0;
      stop(error);
      poke();
    };
    void stop.then(() => finish());
    // Shutdown ends the stream with a message saying where to resume, rather than cutting it.
    const onShutdown = () =>
      finish(
        new ResubscribeError(
          'SERVER_SHUTTING_DOWN',
          `This server is shutting down: resubscribe (to another instance) with afterSequence: ${delivered}`,
          delivered,
        ),
      );
    if (r.shutdown.aborted) onShutdown();
    r.shutdown.addEventListener('abort', onShutdown, { once: true });
    void stop.then(() => r.shutdown.removeEventListener('abort', onShutdown));
    const stillVisible = visibilityCheck(r, viewer);

    /** Delivers one update; `message`, when it comes from one, shares the visibility lookup. */
    const send = async (update: OperationUpdate, message?: EventMessage) => {
      if (!(await stillVisible(update.operation, message))) {
        finish(new NotFoundError('Operation', displayId));
        return;
      }
      if (finished) return;
      delivered = update.sequence;
      await push(update);
      const status = update.event ? update.event.status : update.operation.status;
      if (isTerminal(status)) finish();
    };
    /** Delivers the stored events after `delivered` up to `upTo`, a page at a time. */
    const catchUp = async (upTo: number, operation: Operation) => {
      while (!finished && delivered < upTo) {
        const from = delivered;
        const page = await liveRead(() =>
          r.db.operationEvent.findMany({
            where: { operationId: id, sequence: { gt: from, lte: upTo } },
            orderBy: { sequence: 'asc' },
            take: PAGE_SIZE,
          }),
        );
        if (page.length === 0) return;
        for (const event of page) {
          if (finished) return;
          await send({ sequence: event.sequence, event, operation });
        }
      }
    };
    /**
     * The input as read with the snapshot: a published row leaves a large one out, and an input
     * never changes, so live messages get it from here rather than from a read each.
     */
    let input: Operation['input'] | undefined;
    const deliverLive = async (message: EventMessage) => {
      if (message.event.sequence <= delivered) return; // already delivered: a duplicate or a replay
      const shared = fromMessage(message);
      const operation =
        shared.operation.input === undefined && input !== undefined
          ? { ...shared.operation, input }
          : shared.operation;
      if (message.event.sequence > delivered + 1) await catchUp(message.event.sequence - 1, operation);
      if (finished) return;
      await send({ sequence: message.event.sequence, event: shared.event, operation }, message);
    };
    const deliverStored = async () => {
      const operation = await liveRead(() => r.db.operation.findUniqueOrThrow({ where: { id } }));
      await catchUp(operation.sequence, operation);
      if (isTerminal(operation.status) && delivered >= operation.sequence) finish();
    };

    const onMessage = (payload: unknown) => {
      if (finished) return;
      if (queue.length >= maxBacklog) {
        finish(
          new ResubscribeError(
            'SUBSCRIBER_TOO_SLOW',
            `Subscriber fell too far behind: ${queue.length} updates were waiting. Everything up to sequence ${delivered} was delivered; resubscribe with afterSequence: ${delivered} to get the rest.`,
            delivered,
          ),
        );
        return;
      }
      queue.push(payload as EventMessage);
      poke();
    };
    const onSequence = (sequence: number) => {
      if (finished || sequence <= delivered) return;
      behind = true;
      poke();
    };

    let unsubscribe: (() => void) | undefined;
    let unwatch: (() => void) | undefined;
    try {
      unsubscribe = await r.bus.subscribe(operationChannel(id), onMessage);
      unwatch = pollerFor(r).watch(id, onSequence);
      const snapshot = await liveRead(() => r.db.operation.findUniqueOrThrow({ where: { id } }));
      input = snapshot.input;
      if (afterSequence === null || afterSequence === undefined) {
        await send({ sequence: snapshot.sequence, event: null, operation: snapshot });
      } else {
        delivered = Math.min(afterSequence, snapshot.sequence);
        await catchUp(snapshot.sequence, snapshot);
        if (isTerminal(snapshot.status)) finish();
      }
      while (!finished) {
        const message = queue.shift();
        if (message) await deliverLive(message);
        else if (behind) {
          behind = false;
          await deliverStored();
        } else {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      }
    } catch (error) {
      finish(
        isConnectionError(error)
          ? new ResubscribeError(
              'SERVICE_UNAVAILABLE',
              `The database is unavailable. Everything up to sequence ${delivered} was delivered; resubscribe with afterSequence: ${delivered} to get the rest.`,
              delivered,
            )
          : error,
      );
    } finally {
      unwatch?.();
      unsubscribe?.();
    }
  });
}
