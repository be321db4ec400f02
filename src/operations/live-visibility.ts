import type { Viewer } from '../auth/viewer.ts';
import { type CollectionGuard, canSeeCollection, seesByOwner } from '../auth/visibility.ts';
import { retryWhileUnavailable } from '../db/unavailable.ts';
import type { Operation, OperationEvent } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import { type EventMessage, toEvent, toOperation } from './record.ts';

/**
 * What every live stream of a process does with one published message, done once per message
 * rather than once per subscriber: the bus hands the same parsed message object to every
 * subscriber of its channel (src/events/bus.ts), so work keyed by that object is shared — a
 * thousand subscribers of one operation cost one conversion and one collection lookup per event.
 */

/** How long a stream waits out an unreachable database before ending with SERVICE_UNAVAILABLE. */
export const READ_RETRY_MS = 30_000;

/** A database read of a live stream: retried while the database is unreachable. */
export const liveRead = <T>(query: () => Promise<T>): Promise<T> =>
  retryWhileUnavailable(query, { deadlineMs: READ_RETRY_MS, maxDelayMs: 1000 });

const converted = new WeakMap<EventMessage, { operation: Operation; event: OperationEvent }>();

/**
 * The message's operation and event in Prisma's shape, converted once for all its subscribers.
 * Shared and read-only: copy before changing (src/operations/updates.ts adds a left-out input).
 */
export function fromMessage(message: EventMessage): { operation: Operation; event: OperationEvent } {
  let value = converted.get(message);
  if (!value) {
    value = { operation: toOperation(message.operation), event: toEvent(message.event) };
    converted.set(message, value);
  }
  return value;
}

/** Collection lookups started for a message, shared by every subscriber checking that message. */
const lookups = new WeakMap<object, Promise<CollectionGuard | null>>();

/**
 * The visibility rule again for one message (src/auth/visibility.ts): a viewer who is not the
 * operation's owner (nor an admin) sees it only through its collection, read from the database
 * now. Owners and admins cost nothing. With `message` (the bus's shared object), the read is made
 * once for all subscribers of that message, and always after the message arrived, so a collection
 * made private is seen as such by every message published after the change.
 */
export async function stillVisible(
  r: Resources,
  viewer: Viewer,
  operation: Operation,
  message?: EventMessage,
): Promise<boolean> {
  if (seesByOwner(viewer, operation.ownerId)) return true;
  const { collectionId } = operation;
  if (!collectionId) return false;
  let lookup = message && lookups.get(message);
  if (!lookup) {
    lookup = liveRead(() =>
      r.db.collection.findUnique({
        where: { id: collectionId },
        select: { ownerId: true, isPublic: true },
      }),
    );
    if (message) lookups.set(message, lookup);
  }
  const collection = await lookup;
  return collection !== null && canSeeCollection(viewer, collection);
}
