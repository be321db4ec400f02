import { Repeater } from 'graphql-yoga';
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
 * `operationUpdated` does with `afterSequence`.
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
  const maxBacklog = r.config.subscriptionMaxBacklog;
  const maxReplay = r.config.liveListMaxReplay;

  return new Repeater<OperationChange>(async (push, stop) => {
    let position = start;
    const cursor = () => (position ? encodeCursor(secret, viewer.id, position) : null);
    let finished = false;
    const queue: EventMessage[] = [];
    /** A reconciliation is owed (resume, cap reached, bus back or down, timer). */
    let reconcileOwed = start !== null;
    let lastReconcile = Date.now();
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
    const onShutdown = () =>
      finish(
        new LiveListError(
          'SERVER_SHUTTING_DOWN',
          'This server is shutting down: resubscribe (to another instance) with after: the cursor in this error.',
          cursor(),
        ),
      );
    if (r.shutdown.aborted) onShutdown();
    r.shutdown.addEventListener('abort', onShutdown, { once: true });
    void stop.then(() => r.shutdown.removeEventListener('abort', onShutdown));
    const owe = () => {
      reconcileOwed = true;
      poke();
    };
    const unlisten = r.bus.onConnectionChange(owe);
    const timer = setInterval(() => {
      if (!r.bus.connected || Date.now() - lastReconcile >= RECONCILE_MS) owe();
    }, OUTAGE_POLL_MS);
    timer.unref();

    const deliverLive = async (at: Position, message: EventMessage) => {
      const { operation } = fromMessage(message);
      const { sequence, xid: text } = message.event;
      const xid = text ? BigInt(text) : null;
      if (covers(at, operation.id, sequence, xid)) return;
      if (!matches(filter, operation) || !(await stillVisible(r, viewer, operation, message)) || finished)
        return;
      at.delivered.set(operation.id, { sequence, xid });
      await push({ cursor: cursor() as string, operation });
      if (at.delivered.size >= DELIVERED_CAP) reconcileOwed = true;
    };

    /** Delivers every owed change from the database, then moves the position to the read's snapshot. */
    const reconcile = async (at: Position) => {
      const startedAt = Date.now();
      const { snapshot, operations } = await liveRead(() =>
        replayChanges(r.db, viewer, filter, at, maxReplay),
      );
      if (operations.length > maxReplay) {
        finish(
          new LiveListError(
            'RESYNC_REQUIRED',
            `More than ${maxReplay} operations changed since this cursor: query operations again, then subscribe without after.`,
            null,
          ),
        );
        return;
      }
      for (const operation of operations) {
        if (finished) return;
        // Operations up to this one are now delivered as of `snapshot` (rows come in id order).
        at.levels = [
          ...at.levels.filter((level) => level.lastId > operation.id),
          { snapshot, lastId: operation.id },
        ];
        const live = at.delivered.get(operation.id);
        if (live && live.sequence >= operation.sequence) continue;
        await push({ cursor: cursor() as string, operation });
      }
      if (finished) return;
      position = { base: snapshot, takenAt: startedAt, delivered: new Map(), levels: [] };
      lastReconcile = startedAt;
    };

    const onMessage = (payload: unknown) => {
      if (finished) return;
      if (queue.length >= maxBacklog) {
        finish(
          new LiveListError(
            'SUBSCRIBER_TOO_SLOW',
            `Subscriber fell too far behind: ${queue.length} changes were waiting. Resubscribe with after: the cursor in this error to get the rest.`,
            cursor(),
          ),
        );
        return;
      }
      queue.push(payload as EventMessage);
      poke();
    };

    let unsubscribe: (() => void) | undefined;
    try {
      unsubscribe = await r.bus.subscribe(channel, onMessage);
      // Subscribed first, then the snapshot: a change it does not see arrives live.
      if (!position) {
        const takenAt = Date.now();
        const base = await liveRead(() => currentSnapshot(r.db));
        position = { base, takenAt, delivered: new Map(), levels: [] };
      }
      while (!finished) {
        // Live messages already here go first (a reconciliation would coalesce them into their
        // operation's latest state), unless the cursor has grown to twice its usual bound.
        if (reconcileOwed && (queue.length === 0 || position.delivered.size >= 2 * DELIVERED_CAP)) {
          reconcileOwed = false;
          await reconcile(position);
          continue;
        }
        const message = queue.shift();
        if (message) await deliverLive(position, message);
        else
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
      }
    } catch (error) {
      finish(
        isConnectionError(error)
          ? new LiveListError(
              'SERVICE_UNAVAILABLE',
              'The database is unavailable: resubscribe with after: the cursor in this error to get the rest.',
              cursor(),
            )
          : error,
      );
    } finally {
      clearInterval(timer);
      unlisten();
      unsubscribe?.();
    }
  });
}
