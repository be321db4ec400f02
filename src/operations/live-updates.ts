import type { Viewer } from '../auth/viewer.ts';
import { canSeeCollection } from '../auth/visibility.ts';
import { isConnectionError } from '../db/unavailable.ts';
import { NotFoundError } from '../errors.ts';
import type { Operation } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import {
  covers,
  DELIVERED_CAP,
  decodeCursor,
  encodeCursor,
  MAX_LEVELS,
  type Position,
} from './live-cursor.ts';
import { currentSnapshot, type LiveFilter, matches, replayChanges } from './live-replay.ts';
import { LiveStream } from './live-stream.ts';
import { fromMessage, liveRead, stillVisible } from './live-visibility.ts';
import { ALL_OPERATIONS_CHANNEL, collectionChannel, type EventMessage, userChannel } from './record.ts';

/** One message of `operationsUpdated`. */
export interface OperationChange {
  /** Resume here: everything up to and including this message was delivered. */
  cursor: string;
  /** The operation as it is after the change. */
  operation: Operation;
}

/**
 * `operationsUpdated` ended early. Retryable codes carry `after`, the cursor to resubscribe with
 * (everything up to it was delivered); RESYNC_REQUIRED means the cursor cannot be resumed (too old,
 * or too many changes to replay): query `operations` again and subscribe without `after`.
 * Reaches clients as a GraphQL error with `extensions.code`, `retryable` and `after`.
 */
export class LiveListError extends Error {
  override name = 'LiveListError';
  constructor(
    readonly code: 'SUBSCRIBER_TOO_SLOW' | 'SERVICE_UNAVAILABLE' | 'SERVER_SHUTTING_DOWN' | 'RESYNC_REQUIRED',
    message: string,
    readonly after: string | null,
  ) {
    super(message);
  }
}

/** A live stream reconciles with the database at least this often (ms), and every second while the bus is down. */
const RECONCILE_MS = 30_000;
const OUTAGE_POLL_MS = 1000;

/**
 * The stream behind `operationsUpdated`.
 *
 * Live path: one bus channel per stream — the collection's (with `filter.collectionId`), the
 * admins' (an admin without it), or else the viewer's own — carrying every committed change once
 * per channel (src/operations/attempt.ts `publish`); the filter and the visibility rule are applied
 * in memory per subscriber (owners and admins cost nothing; a viewer who sees an operation only
 * through its collection costs one primary-key lookup per message, as in `operationUpdated`).
 *
 * Gapless: the stream keeps a `Position` (src/operations/live-cursor.ts) and every message carries
 * it as its cursor. It reconciles with the database — one statement reading every owed change
 * together with the snapshot it was read in (src/operations/live-replay.ts) — on resume, when 16
 * changes were delivered live since the last time (to keep cursors small), when the bus comes
 * back, every second while it is down, and every 30 s anyway (a publish lost between processes).
 * Live messages the position already covers are dropped, so nothing is delivered twice for the
 * same (operation, sequence). A replay delivers each owed operation once, in its current state:
 * intermediate states of an operation that changed several times meanwhile are coalesced (its
 * events stay readable through `Operation.events` and `operationUpdated`).
 *
 * Backpressure, shutdown and database outages end the stream with an error carrying `after`, as
 * `operationUpdated` does with `afterSequence` (the same bounded stream: src/operations/live-stream.ts).
 */
export async function operationsUpdates(
  r: Resources,
  viewer: Viewer,
  filter: LiveFilter,
  after: string | null | undefined,
  collectionDisplayId: string | null,
): Promise<AsyncIterable<OperationChange>> {
  const secret = r.config.jwtSecret;
  let start: Position | null = null;
  if (after !== null && after !== undefined) {
    start = decodeCursor(secret, viewer.id, after);
    const ageSeconds = (Date.now() - start.takenAt) / 1000;
    if (ageSeconds > r.config.liveListCursorMaxAgeSeconds || start.levels.length >= MAX_LEVELS) {
      throw new LiveListError(
        'RESYNC_REQUIRED',
        `This cursor can no longer be resumed (older than ${r.config.liveListCursorMaxAgeSeconds} s): query operations again, then subscribe without after.`,
        null,
      );
    }
  }
  if (filter.collectionId) {
    const collection = await r.db.collection.findUnique({
      where: { id: filter.collectionId },
      select: { ownerId: true, isPublic: true },
    });
    if (!collection || !canSeeCollection(viewer, collection)) {
      throw new NotFoundError('Collection', collectionDisplayId ?? filter.collectionId);
    }
  }
  const channel = filter.collectionId
    ? collectionChannel(filter.collectionId)
    : viewer.isAdmin
      ? ALL_OPERATIONS_CHANNEL
      : userChannel(viewer.id);
  return new ChangeStream(r, viewer, filter, start, channel);
}

/** One `operationsUpdated` subscription (see `operationsUpdates`). */
class ChangeStream extends LiveStream<OperationChange> {
  /** A reconciliation is owed (resume, cap reached, bus back or down, timer). */
  private reconcileOwed: boolean;
  private lastReconcile = Date.now();
  private unsubscribe: (() => void) | undefined;
  private unlisten: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly r: Resources,
    private readonly viewer: Viewer,
    private readonly filter: LiveFilter,
    private position: Position | null,
    private readonly channel: string,
  ) {
    super(r.config.subscriptionMaxBacklog, r.shutdown);
    this.reconcileOwed = position !== null;
  }

  private cursor(): string | null {
    return this.position ? encodeCursor(this.r.config.jwtSecret, this.viewer.id, this.position) : null;
  }

  protected tooSlow(waiting: number): Error {
    return new LiveListError(
      'SUBSCRIBER_TOO_SLOW',
      `Subscriber fell too far behind: ${waiting} changes were waiting. Resubscribe with after: the cursor in this error to get the rest.`,
      this.cursor(),
    );
  }

  protected shuttingDown(): Error {
    return new LiveListError(
      'SERVER_SHUTTING_DOWN',
      'This server is shutting down: resubscribe (to another instance) with after: the cursor in this error.',
      this.cursor(),
    );
  }

  protected override failed(error: unknown): unknown {
    if (!isConnectionError(error)) return error;
    return new LiveListError(
      'SERVICE_UNAVAILABLE',
      'The database is unavailable: resubscribe with after: the cursor in this error to get the rest.',
      this.cursor(),
    );
  }

  protected override release(): void {
    clearInterval(this.timer);
    this.unlisten?.();
    this.unsubscribe?.();
  }

  private readonly owe = () => {
    this.reconcileOwed = true;
    this.poke();
  };

  protected async run(): Promise<void> {
    const { r } = this;
    this.unlisten = r.bus.onConnectionChange(this.owe);
    this.timer = setInterval(() => {
      if (!r.bus.connected || Date.now() - this.lastReconcile >= RECONCILE_MS) this.owe();
    }, OUTAGE_POLL_MS);
    this.timer.unref();
    this.unsubscribe = await r.bus.subscribe(this.channel, this.onMessage);
    // Subscribed first, then the snapshot: a change it does not see arrives live.
    if (!this.position) {
      const takenAt = Date.now();
      const base = await liveRead(() => currentSnapshot(r.db));
      this.position = { base, takenAt, delivered: new Map(), levels: [] };
    }
    while (!this.finished) {
      const at = this.position as Position; // replaced by each reconciliation
      // Live messages already here go first (a reconciliation would coalesce them into their
      // operation's latest state), unless the cursor has grown to twice its usual bound.
      if (this.reconcileOwed && (this.queue.length === 0 || at.delivered.size >= 2 * DELIVERED_CAP)) {
        this.reconcileOwed = false;
        await this.reconcile(at);
        continue;
      }
      const message = this.queue.shift();
      if (message) await this.deliverLive(at, message);
      else await this.idle();
    }
  }

  private async deliverLive(at: Position, message: EventMessage): Promise<void> {
    const { operation } = fromMessage(message);
    const { sequence, xid: text } = message.event;
    const xid = text ? BigInt(text) : null;
    if (covers(at, operation.id, sequence, xid)) return;
    if (
      !matches(this.filter, operation) ||
      !(await stillVisible(this.r, this.viewer, operation, message)) ||
      this.finished
    ) {
      return;
    }
    at.delivered.set(operation.id, { sequence, xid });
    await this.push({ cursor: this.cursor() as string, operation });
    if (at.delivered.size >= DELIVERED_CAP) this.reconcileOwed = true;
  }

  /** Delivers every owed change from the database, then moves the position to the read's snapshot. */
  private async reconcile(at: Position): Promise<void> {
    const { r } = this;
    const maxReplay = r.config.liveListMaxReplay;
    const startedAt = Date.now();
    const { snapshot, operations } = await liveRead(() =>
      replayChanges(r.db, this.viewer, this.filter, at, maxReplay),
    );
    if (operations.length > maxReplay) {
      this.finish(
        new LiveListError(
          'RESYNC_REQUIRED',
          `More than ${maxReplay} operations changed since this cursor: query operations again, then subscribe without after.`,
          null,
        ),
      );
      return;
    }
    for (const operation of operations) {
      if (this.finished) return;
      // Operations up to this one are now delivered as of `snapshot` (rows come in id order).
      at.levels = [
        ...at.levels.filter((level) => level.lastId > operation.id),
        { snapshot, lastId: operation.id },
      ];
      const live = at.delivered.get(operation.id);
      if (live && live.sequence >= operation.sequence) continue;
      await this.push({ cursor: this.cursor() as string, operation });
    }
    if (this.finished) return;
    this.position = { base: snapshot, takenAt: startedAt, delivered: new Map(), levels: [] };
    this.lastReconcile = startedAt;
  }
}
