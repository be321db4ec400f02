import { Repeater } from 'graphql-yoga';
import type { Viewer } from '../auth/viewer.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { Operation, OperationEvent } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import { canView } from './access.ts';
import { type EventMessage, operationChannel, toEvent, toOperation } from './record.ts';
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

/** How many live messages may wait for a slow client before it is told to resubscribe. */
const MAX_BACKLOG = 10_000;

/**
 * The stream behind `operationUpdated`: subscribe to the operation's channel first, then read
 * the snapshot (or replay events after `afterSequence`) from the database, then deliver live
 * events in sequence order — dropping what the snapshot already covered, filling any gap from the
 * database — and finish after a terminal state.
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
  const found = await r.db.operation.findUnique({ where: { id } });
  if (!found || !canView(viewer, found)) throw new NotFoundError('Operation', displayId);

  return new Repeater<OperationUpdate>(async (push, stop) => {
    let delivered = 0;
    let finished = false;
    let backlog = 0;
    let release!: () => void;
    let chain = new Promise<void>((resolve) => {
      release = resolve;
    });
    const finish = (error?: unknown) => {
      finished = true;
      stop(error);
    };
    const send = async (update: OperationUpdate) => {
      delivered = update.sequence;
      await push(update);
      const status = update.event ? update.event.status : update.operation.status;
      if (isTerminal(status)) finish();
    };
    const catchUp = async (upTo: number, operation: Operation) => {
      const missed = await r.db.operationEvent.findMany({
        where: { operationId: id, sequence: { gt: delivered, lte: upTo } },
        orderBy: { sequence: 'asc' },
      });
      for (const event of missed) {
        if (finished) return;
        await send({ sequence: event.sequence, event, operation });
      }
    };
    const onLive = async (message: EventMessage) => {
      backlog -= 1;
      if (finished || message.event.sequence <= delivered) return;
      const operation = toOperation(message.operation);
      if (message.event.sequence > delivered + 1) await catchUp(message.event.sequence - 1, operation);
      if (finished) return;
      await send({ sequence: message.event.sequence, event: toEvent(message.event), operation });
    };

    let unsubscribe: (() => void) | undefined;
    try {
      unsubscribe = await r.bus.subscribe(operationChannel(id), (payload) => {
        if (finished) return;
        backlog += 1;
        if (backlog > MAX_BACKLOG) {
          finish(new Error('subscriber fell too far behind; resubscribe with afterSequence'));
          return;
        }
        chain = chain.then(() => onLive(payload as EventMessage)).catch(finish);
      });
      const snapshot = await r.db.operation.findUniqueOrThrow({ where: { id } });
      if (afterSequence === null || afterSequence === undefined) {
        await send({ sequence: snapshot.sequence, event: null, operation: snapshot });
      } else {
        delivered = Math.min(afterSequence, snapshot.sequence);
        await catchUp(snapshot.sequence, snapshot);
        if (isTerminal(snapshot.status)) finish();
      }
      release();
      await stop;
    } catch (error) {
      finish(error);
    } finally {
      unsubscribe?.();
    }
  });
}
