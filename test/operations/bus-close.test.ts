import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createEventBus } from '../../src/events/bus.ts';
import { createLogger } from '../../src/logger.ts';
import { uniquePrefix } from '../support/app.ts';
import { REDIS_URL } from '../support/services.ts';

/**
 * A subscription opened while the server shuts down: its SUBSCRIBE is still unanswered when the
 * bus closes the connection. graphql-redis-subscriptions rejects a second, internal promise for the
 * channel's first SUBSCRIBE that nobody awaits; unhandled, that rejection ended the process with
 * exit code 1 at SIGTERM (the CI failure of test/client/resume.test.ts at stop 17).
 */

const unhandled: unknown[] = [];
const record = (reason: unknown) => unhandled.push(reason);
process.on('unhandledRejection', record);
afterEach(() => {
  unhandled.length = 0;
});
afterAll(() => {
  process.off('unhandledRejection', record);
});

const until = async (check: () => boolean) => {
  const deadline = Date.now() + 5000;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
};
/** Two full loop turns: an unhandled rejection is reported after the microtasks of the turn it happened in. */
const turns = async () => {
  for (let i = 0; i < 2; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

describe('closing the Redis bus', () => {
  it('with SUBSCRIBEs still waiting for the connection leaves no unhandled rejection', async () => {
    const bus = createEventBus({
      redisUrl: REDIS_URL,
      prefix: uniquePrefix(),
      logger: createLogger({ level: 'silent' }),
    });
    // Not yet connected: the SUBSCRIBEs wait in ioredis's offline queue, which the close rejects.
    expect(bus.connected).toBe(false);
    // The first subscriber of one channel, two of another: both of the library's code paths.
    const subscribes = [
      bus.subscribe('a', () => {}),
      bus.subscribe('b', () => {}),
      bus.subscribe('b', () => {}),
    ];
    await bus.close();
    const ends = await Promise.all(subscribes);
    for (const end of ends) end();
    await turns();
    expect(unhandled.map(String)).toEqual([]);
  });

  it('answers a subscribe made after close at once, with no unhandled rejection', async () => {
    const bus = createEventBus({
      redisUrl: REDIS_URL,
      prefix: uniquePrefix(),
      logger: createLogger({ level: 'silent' }),
    });
    await until(() => bus.connected);
    await bus.close();
    const end = await bus.subscribe('late', () => {});
    end();
    await turns();
    expect(unhandled.map(String)).toEqual([]);
  });
});
