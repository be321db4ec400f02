import type { Viewer } from '../auth/viewer.ts';
import { isConnectionError } from '../db/unavailable.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { EventBus } from '../events/bus.ts';
import { createFallbackPoller, type FallbackPoller } from '../events/fallback.ts';
import type { Operation, OperationEvent } from '../generated/prisma/client.ts';
import { shareAcrossSubscribers } from '../graphql/shared-execution.ts';
import type { Resources } from '../resources.ts';
import { canView, GUARD_SELECT } from './access.ts';
import { LiveStream } from './live-stream.ts';
import { fromMessage, liveRead, stillVisible } from './live-visibility.ts';
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

/**
 * The fields of an `operationUpdated` / `batchUpdated` message whose value depends on the message
 * only, never on who receives it: subscribers whose documents select nothing else share one
 * execution per message (src/graphql/shared-execution.ts). Viewer-dependent fields (an owner's
 * details, the collection, events pages, batch items) are not listed.
 */
export const SHARED_UPDATE_FIELDS: Readonly<Record<string, readonly string[]>> = {
  Subscription: ['operationUpdated', 'batchUpdated'],
  OperationUpdate: ['sequence', 'event', 'operation'],
  OperationEvent: ['sequence', 'kind', 'status', 'progress', 'message', 'data', 'createdAt'],
  Operation: [
    'id',
    'type',
    'status',
    'input',
    'progress',
    'attempt',
    'result',
    'error',
    'sequence',
    'createdAt',
    'startedAt',
    'completedAt',
    'nextAttemptAt',
    'updatedAt',
  ],
  Progress: ['current', 'total', 'message', 'fraction'],
  OperationError: ['code', 'message'],
};

/**
 * The update of a live message, one object for every subscriber of the process who receives it
 * (marked shared: executed once per document). `input` is the input read with a snapshot, for a
 * published row that left a large one out (an input never changes).
 */
const liveUpdates = new WeakMap<EventMessage, OperationUpdate>();
function liveUpdate(message: EventMessage, input: Operation['input'] | undefined): OperationUpdate {
  let update = liveUpdates.get(message);
  if (!update) {
    const shared = fromMessage(message);
    const operation =
      shared.operation.input === undefined && input !== undefined
        ? { ...shared.operation, input }
        : shared.operation;
    update = shareAcrossSubscribers({ sequence: message.event.sequence, event: shared.event, operation });
    liveUpdates.set(message, update);
  }
  return update;
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
 * the operation (one read: the access check and the snapshot), then deliver the snapshot (or
 * replay events after `afterSequence`) from the database, then deliver live
 * events in sequence order — dropping what was already delivered, filling any gap from the
 * database — and finish after a terminal state.
 *
 * While the bus is disconnected, a shared poller reads the operation's sequence every 500 ms and
 * the stream reads whatever it has not delivered yet; once more after the bus reconnects.
 *
 * Backpressure (src/operations/live-stream.ts): one loop delivers, one update at a time, and waits
 * until the transport has taken each one (graphql-ws awaits the socket write, SSE waits for
 * 'drain'), so a slow client only slows its own loop. Live messages arriving meanwhile wait in a
 * queue bounded by `config.subscriptionMaxBacklog`; when it is full the subscription ends with
 * SUBSCRIBER_TOO_SLOW and the sequence to resume after. Publishers never wait for subscribers.
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
  const stream = new OperationStream(r, viewer, id, displayId, afterSequence ?? null);
  let visible = false;
  try {
    visible = await stream.open();
  } finally {
    if (!visible) void stream.return();
  }
  if (!visible) throw new NotFoundError('Operation', displayId);
  return stream;
}

/** One `operationUpdated` subscription (see `operationUpdates`). */
class OperationStream extends LiveStream<OperationUpdate> {
  /** The last sequence handed to the client (what it resumes after if the stream ends early). */
  private delivered: number;
  /** The database holds events not delivered yet (learnt from the fallback poller). */
  private behind = false;
  /**
   * The input as read with the snapshot: a published row leaves a large one out, and an input
   * never changes, so live messages get it from here rather than from a read each.
   */
  private input: Operation['input'] | undefined;
  /** The operation as read by `open`, until `run` starts from it. */
  private snapshot: Operation | undefined;
  private unsubscribe: (() => void) | undefined;
  private unwatch: (() => void) | undefined;

  constructor(
    private readonly r: Resources,
    private readonly viewer: Viewer,
    private readonly id: string,
    private readonly displayId: string,
    private readonly afterSequence: number | null,
  ) {
    super(r.config.subscriptionMaxBacklog, r.shutdown);
    this.delivered = afterSequence ?? 0;
  }

  protected tooSlow(waiting: number): Error {
    const { delivered } = this;
    return new ResubscribeError(
      'SUBSCRIBER_TOO_SLOW',
      `Subscriber fell too far behind: ${waiting} updates were waiting. Everything up to sequence ${delivered} was delivered; resubscribe with afterSequence: ${delivered} to get the rest.`,
      delivered,
    );
  }

  // Shutdown ends the stream with a message saying where to resume, rather than cutting it.
  protected shuttingDown(): Error {
    const { delivered } = this;
    return new ResubscribeError(
      'SERVER_SHUTTING_DOWN',
      `This server is shutting down: resubscribe (to another instance) with afterSequence: ${delivered}`,
      delivered,
    );
  }

  protected override failed(error: unknown): unknown {
    if (!isConnectionError(error)) return error;
    const { delivered } = this;
    return new ResubscribeError(
      'SERVICE_UNAVAILABLE',
      `The database is unavailable. Everything up to sequence ${delivered} was delivered; resubscribe with afterSequence: ${delivered} to get the rest.`,
      delivered,
    );
  }

  protected override release(): void {
    this.unwatch?.();
    this.unsubscribe?.();
  }

  /** From the fallback poller: the operation's latest sequence in the database. */
  private readonly onSequence = (sequence: number) => {
    if (this.finished || sequence <= this.delivered) return;
    this.behind = true;
    this.poke();
  };

  /**
   * Subscribes to the operation's channel, then reads the operation with what the visibility rule
   * needs: one read is both the access check and the snapshot the stream starts from (a change
   * it does not see arrives live). False when the viewer may not see it (or it does not exist).
   */
  async open(): Promise<boolean> {
    const { r, id } = this;
    this.unsubscribe = await r.bus.subscribe(operationChannel(id), this.onMessage);
    // Not retried (unlike the stream's later reads): a subscribe while the database is unreachable
    // is answered SERVICE_UNAVAILABLE at once.
    const found = await r.db.operation.findUnique({ where: { id }, include: GUARD_SELECT });
    if (!found || !canView(this.viewer, found)) return false;
    const { collection: _guard, ...snapshot } = found;
    this.snapshot = snapshot;
    this.input = snapshot.input;
    this.unwatch = pollerFor(r).watch(id, this.onSequence);
    return true;
  }

  protected async run(): Promise<void> {
    const { snapshot } = this;
    this.snapshot = undefined; // not kept for the stream's life
    if (snapshot) await this.begin(snapshot, this.afterSequence);
    while (!this.finished) {
      const message = this.queue.shift();
      if (message) await this.deliverLive(message);
      else if (this.behind) {
        this.behind = false;
        await this.deliverStored();
      } else await this.idle();
    }
  }

  /** The first messages: the snapshot, or the stored events after `afterSequence`. */
  private async begin(snapshot: Operation, afterSequence: number | null): Promise<void> {
    if (afterSequence === null) {
      await this.send({ sequence: snapshot.sequence, event: null, operation: snapshot });
    } else {
      this.delivered = Math.min(afterSequence, snapshot.sequence);
      await this.catchUp(snapshot.sequence, snapshot);
      if (isTerminal(snapshot.status)) this.finish();
    }
  }

  /** Delivers one update; `message`, when it comes from one, shares the visibility lookup. */
  private async send(update: OperationUpdate, message?: EventMessage): Promise<void> {
    if (!(await stillVisible(this.r, this.viewer, update.operation, message))) {
      this.finish(new NotFoundError('Operation', this.displayId));
      return;
    }
    if (this.finished) return;
    this.delivered = update.sequence;
    await this.push(update);
    const status = update.event ? update.event.status : update.operation.status;
    if (isTerminal(status)) this.finish();
  }

  /** Delivers the stored events after `delivered` up to `upTo`, a page at a time. */
  private async catchUp(upTo: number, operation: Operation): Promise<void> {
    const { r, id } = this;
    while (!this.finished && this.delivered < upTo) {
      const from = this.delivered;
      const page = await liveRead(() =>
        r.db.operationEvent.findMany({
          where: { operationId: id, sequence: { gt: from, lte: upTo } },
          orderBy: { sequence: 'asc' },
          take: PAGE_SIZE,
        }),
      );
      if (page.length === 0) return;
      for (const event of page) {
        if (this.finished) return;
        await this.send({ sequence: event.sequence, event, operation });
      }
    }
  }

  private async deliverLive(message: EventMessage): Promise<void> {
    if (message.event.sequence <= this.delivered) return; // already delivered: a duplicate or a replay
    const update = liveUpdate(message, this.input);
    if (message.event.sequence > this.delivered + 1) {
      await this.catchUp(message.event.sequence - 1, update.operation);
    }
    if (this.finished) return;
    await this.send(update, message);
  }

  private async deliverStored(): Promise<void> {
    const { r, id } = this;
    const operation = await liveRead(() => r.db.operation.findUniqueOrThrow({ where: { id } }));
    await this.catchUp(operation.sequence, operation);
    if (isTerminal(operation.status) && this.delivered >= operation.sequence) this.finish();
  }
}
