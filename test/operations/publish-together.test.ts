import { describe, expect, it } from 'vitest';
import { createEventBus } from '../../src/events/bus.ts';
import { createLogger } from '../../src/logger.ts';
import { publishCommittedTogether } from '../../src/operations/attempt.ts';
import {
  ALL_OPERATIONS_CHANNEL,
  batchChannel,
  collectionChannel,
  type EventMessage,
  operationChannel,
  userChannel,
} from '../../src/operations/record.ts';
import type { Resources } from '../../src/resources.ts';

/**
 * Events of one operation committed together (a batch's ITEM events) reach the operation's
 * subscribers and its batch's coordinator every one, in order; the live lists get the last one only
 * (the state they could see), on every list channel.
 */
describe('publishCommittedTogether', () => {
  it('publishes every event to the operation and its batch, the last one to the lists', async () => {
    const bus = createEventBus({
      redisUrl: undefined,
      prefix: 'together:',
      logger: createLogger({ level: 'silent' }),
    });
    // Counting never throws (src/metrics/events.ts): a fault is counted instead.
    const r = { bus, metrics: { faults: { inc: () => {} } } } as unknown as Resources;
    const heard = new Map<string, number[]>();
    const channels = [
      operationChannel('op1'),
      userChannel('u1'),
      collectionChannel('c1'),
      ALL_OPERATIONS_CHANNEL,
      batchChannel('b1'),
    ];
    for (const channel of channels) {
      heard.set(channel, []);
      await bus.subscribe(channel, (payload) => {
        const message = payload as Partial<EventMessage> & { operationId?: string };
        heard.get(channel)?.push(message.event?.sequence ?? -1);
      });
    }
    const messages = [5, 6, 7].map(
      (sequence) =>
        ({
          operation: { id: 'op1', ownerId: 'u1', collectionId: 'c1', batchId: 'b1', sequence },
          event: { sequence, kind: 'ITEM' },
        }) as unknown as EventMessage,
    );
    publishCommittedTogether(r, messages);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(Object.fromEntries(heard)).toEqual({
      [operationChannel('op1')]: [5, 6, 7],
      [userChannel('u1')]: [7],
      [collectionChannel('c1')]: [7],
      [ALL_OPERATIONS_CHANNEL]: [7],
      [batchChannel('b1')]: [-1, -1, -1],
    });
    await bus.close();
  });
});
