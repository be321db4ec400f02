import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createEventBus, type EventBus } from '../../src/events/bus.ts';
import { createLogger } from '../../src/logger.ts';
import { uniquePrefix } from '../support/app.ts';
import { REDIS_URL } from '../support/services.ts';

/**
 * The Redis bus writes the messages published in one round of microtasks in one socket write
 * (src/events/bus.ts corks the publisher until the microtasks queued so far have run): messages must
 * still arrive all of them, in order, whether published in one turn or across several; the
 * continuations one loop resolves together (a grouped statement's callers) share one write; and a
 * message leaves before the publisher's continuation goes on with other work.
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

/** Socket writes (system calls) to Redis by this process, counted as bench/count-statements.mjs does. */
let redisWrites = 0;
const redisPort = Number(new URL(REDIS_URL).port || 6379);
for (const method of ['_write', '_writev'] as const) {
  const original = net.Socket.prototype[method] as (...args: unknown[]) => unknown;
  net.Socket.prototype[method] = function countedWrite(this: net.Socket, ...args: unknown[]) {
    if (this.remotePort === redisPort) redisWrites += 1;
    return original.apply(this, args);
  };
}

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

  it('writes what the continuations one loop resolves together publish in one socket write', async () => {
    const b = bus();
    const heard: number[] = [];
    await until(() => b.connected);
    await b.subscribe('group', (payload) => heard.push((payload as { n: number }).n));
    const resolvers: (() => void)[] = [];
    let n = 0;
    const attempts = Array.from({ length: 50 }, async () => {
      await new Promise<void>((resolve) => resolvers.push(resolve));
      await null; // a continuation some hops deep, the same for each (as an attempt's after its write)
      b.publishMany([
        { channel: 'group', payload: { n: n++ } },
        { channel: 'group', payload: { n: n++ } },
      ]);
    });
    const before = redisWrites;
    for (const resolve of resolvers) resolve();
    await Promise.all(attempts);
    await new Promise((resolve) => setImmediate(resolve));
    expect(redisWrites - before).toBe(1);
    await until(() => heard.length === n);
    expect(heard).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('writes a message before the publisher goes on with a long chain of microtasks', async () => {
    const b = bus();
    await until(() => b.connected);
    await null; // in a microtask, as a publisher resuming after its commit
    const before = redisWrites;
    b.publish('chain', { n: 0 });
    // What a resolver does after publishing (a GraphQL response, more statements' promises): the
    // write must not wait for the end of the whole microtask queue, as a nextTick would.
    let writtenAfter: number | undefined;
    for (let hop = 1; hop <= 100 && writtenAfter === undefined; hop += 1) {
      await null;
      if (redisWrites > before) writtenAfter = hop;
    }
    expect(writtenAfter).toBe(1);
  });
});
