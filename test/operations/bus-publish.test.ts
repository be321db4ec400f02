import { afterAll, describe, expect, it } from 'vitest';
import { createEventBus, type EventBus } from '../../src/events/bus.ts';
import { createLogger } from '../../src/logger.ts';
import { uniquePrefix } from '../support/app.ts';
import { REDIS_URL } from '../support/services.ts';

/**
 * The Redis bus writes every message published in one turn of the event loop in one socket write
 * (src/events/bus.ts corks the publisher until the turn's microtasks have run): messages must still
 * arrive all of them, in order, whether published in one turn or across several.
 */

const buses: EventBus[] = [];
afterAll(async () => {
  await Promise.all(buses.map((bus) => bus.close()));
});

const bus = () => {
  const created = createEventBus({
    redisUrl: REDIS_URL,
    prefix: uniquePrefix(),
    logger: createLogger({ level: 'silent' }),
  });
  buses.push(created);
  return created;
};

const until = async (check: () => boolean) => {
  const deadline = Date.now() + 5000;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
};

describe('publishing on the Redis bus', () => {
  it('delivers in order what many microtasks of one turn and later turns publish', async () => {
    const b = bus();
    const heard: number[] = [];
    await until(() => b.connected);
    await b.subscribe('ch', (payload) => heard.push((payload as { n: number }).n));
    // 100 continuations resolved together (as a grouped statement's callers), publishing in one turn.
    let n = 0;
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        await null;
        b.publish('ch', { n: n++ });
        b.publishMany([{ channel: 'ch', payload: { n: n++ } }]);
      }),
    );
    // Then one message per turn: each goes out although no other publish follows it.
    for (let i = 0; i < 5; i += 1) {
      b.publish('ch', { n: n++ });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await until(() => heard.length === n);
    expect(heard).toEqual(Array.from({ length: 205 }, (_, i) => i));
  });
});
