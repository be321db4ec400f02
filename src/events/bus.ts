import { RedisPubSub } from 'graphql-redis-subscriptions';
import { PubSub } from 'graphql-subscriptions';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logger.ts';

/**
 * Messages between processes: operation events to subscribers, cancel requests to workers.
 * Redis when configured, in-process otherwise; everything above uses this one interface.
 * Delivery is a fast path only: the database stays the source of truth, and readers fall back to it
 * while `connected` is false.
 */
export interface EventBus {
  /**
   * Sends without waiting and never throws; messages from one process keep their order. While Redis
   * is unreachable nothing queues up: the latest message of each channel (or of each `key`, when
   * given: distinct messages on one channel) is kept and sent when the connection returns (readers
   * fill in what they missed from the database).
   */
  publish(channel: string, payload: unknown, key?: string): void;
  /**
   * `publish` of several messages, in order (a change's messages to its channels). The messages
   * published in one round of microtasks (the callers one loop resolves) go to Redis in one socket
   * write, before later microtasks run.
   */
  publishMany(messages: readonly Published[]): void;
  /**
   * Resolves once the subscription is active, or at once while the bus is disconnected (it takes
   * effect when the connection returns); returns the function that ends it.
   */
  subscribe(channel: string, onMessage: (payload: unknown) => void): Promise<() => void>;
  /**
   * True while messages flow: Redis is connected and every subscription is re-established after a
   * reconnect. Always true in-process.
   */
  readonly connected: boolean;
  /** Calls `listener` whenever `connected` changes; returns the function that removes it. */
  onConnectionChange(listener: (connected: boolean) => void): () => void;
  close(): Promise<void>;
}

/** One message of `publishMany`. */
export interface Published {
  channel: string;
  payload: unknown;
  key?: string;
}

export interface EventBusOptions {
  /** Redis URL. Default: none, which uses in-process pub/sub (one process only). */
  redisUrl: string | undefined;
  /** Prefix of every channel name. */
  prefix: string;
  logger: Logger;
  /**
   * While Redis is unreachable, the latest unsent message of at most this many channels is kept
   * (oldest channels dropped first) and sent once the publisher reconnects. Default 10000.
   */
  maxUnsentChannels?: number;
  /** Longest pause between reconnect attempts to Redis, in ms. Default 1000. */
  maxReconnectDelayMs?: number;
}

export function createEventBus(options: EventBusOptions): EventBus {
  return options.redisUrl ? createRedisBus(options.redisUrl, options) : createLocalBus(options);
}

/** Wraps a subscriber's callback so that one failing reader cannot affect the others or a publisher. */
const guarded =
  (onMessage: (payload: unknown) => void, logger: Logger, channel: string) => (payload: unknown) => {
    try {
      onMessage(payload);
    } catch (error) {
      logger.error('bus subscriber failed', { channel, error });
    }
  };

function createLocalBus({ prefix, logger }: EventBusOptions): EventBus {
  const engine = new PubSub();
  const open = new Set<number>();
  return {
    connected: true,
    onConnectionChange: () => () => {},
    publish(channel, payload) {
      engine.publish(prefix + channel, payload).catch((error: Error) => {
        logger.warn('publish failed', { channel, error: error.message });
      });
    },
    publishMany(messages) {
      for (const { channel, payload } of messages) this.publish(channel, payload);
    },
    async subscribe(channel, onMessage) {
      const id = await engine.subscribe(prefix + channel, guarded(onMessage, logger, channel));
      open.add(id);
      return () => {
        if (open.delete(id)) engine.unsubscribe(id);
      };
    },
    async close() {
      for (const id of open) engine.unsubscribe(id);
      open.clear();
    },
  };
}

/**
 * graphql-redis-subscriptions sends UNSUBSCRIBE and PUNSUBSCRIBE when a channel's last reader
 * leaves and drops the promises. One still waiting when the connection closes (subscriptions
 * ended during shutdown, just before `close`) rejects with "Connection is closed", which unhandled
 * ended the whole process at SIGTERM. A closed connection holds no subscriptions, so those
 * rejections are expected: they are caught here.
 */
function catchUnsubscribes(subscriber: Redis): void {
  for (const name of ['unsubscribe', 'punsubscribe'] as const) {
    const command = subscriber[name].bind(subscriber) as (...args: unknown[]) => Promise<unknown>;
    Object.assign(subscriber, {
      [name]: (...args: unknown[]) => {
        const sent = command(...args);
        sent.catch(() => {});
        return sent;
      },
    });
  }
}

/**
 * graphql-redis-subscriptions keeps a second promise for a channel's first SUBSCRIBE, for the
 * subscribers that join while it is unanswered, and drops it. When the SUBSCRIBE fails (the
 * connection closed at shutdown before Redis answered) that promise rejects with nobody waiting, and
 * unhandled it ended the whole process. The rejection itself reaches the caller of `subscribe`; the
 * library's copy is caught here.
 */
function catchPendingSubscribe(engine: RedisPubSub, name: string): void {
  const pending = (engine as unknown as { subsPendingRefsMap: Map<string, { pending: Promise<unknown> }> })
    .subsPendingRefsMap;
  pending.get(name)?.pending.catch(() => {});
}

function createRedisBus(redisUrl: string, options: EventBusOptions): EventBus {
  const { prefix, logger, maxUnsentChannels = 10_000, maxReconnectDelayMs = 1000 } = options;
  const retryStrategy = (attempt: number) => Math.min(attempt * 100, maxReconnectDelayMs);
  // A publish never waits in a queue: while disconnected it fails at once (kept in `unsent`).
  const publisherOptions: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy,
  };
  // Subscribe commands wait for the connection; ioredis re-subscribes every channel after a reconnect.
  const subscriberOptions: RedisOptions = { maxRetriesPerRequest: null, retryStrategy };
  const publisher = new Redis(redisUrl, publisherOptions);
  const subscriber = new Redis(redisUrl, subscriberOptions);
  catchUnsubscribes(subscriber);
  const engine = new RedisPubSub({ publisher, subscriber });
  let closed = false;

  for (const [role, client] of [
    ['publisher', publisher],
    ['subscriber', subscriber],
  ] as const) {
    let reported = false; // one warning per outage, not one per reconnect attempt
    client.on('error', (error: Error) => {
      if (reported || closed) return;
      reported = true;
      logger.warn('redis error', { role, error: error.message });
    });
    client.on('ready', () => {
      reported = false;
    });
  }

  // `connected`: the subscriber is ready and its channels are subscribed again. ioredis emits
  // 'ready' just before it re-sends SUBSCRIBE for every channel; a PING sent after them is answered
  // after them, so its reply proves they are in effect.
  let connected = false;
  let lostAt = 0;
  let generation = 0;
  const listeners = new Set<(connected: boolean) => void>();
  const setConnected = (value: boolean) => {
    if (connected === value || closed) return;
    connected = value;
    if (value && lostAt) logger.info('redis subscriptions restored', { downMs: Date.now() - lostAt });
    if (!value) {
      lostAt = Date.now();
      logger.warn('redis connection lost: readers fall back to the database until it returns');
    }
    for (const listener of listeners) {
      try {
        listener(value);
      } catch (error) {
        logger.error('bus connection listener failed', { error });
      }
    }
  };
  // Subscribes waiting for Redis give up waiting when the connection closes.
  const waiting = new Set<() => void>();
  subscriber.on('ready', () => {
    const mine = ++generation;
    setImmediate(() => {
      subscriber.ping().then(
        () => mine === generation && setConnected(true),
        () => {}, // the connection closed again; the next 'ready' retries
      );
    });
  });
  subscriber.on('close', () => {
    generation += 1;
    setConnected(false);
    for (const stopWaiting of waiting) stopWaiting();
    waiting.clear();
  });

  // Latest unsent message per key (Map order: least recently failed first).
  const unsent = new Map<string, { name: string; payload: unknown }>();
  let failed = 0;
  let dropped = 0;
  const send = (name: string, payload: unknown, key = name) => {
    engine.publish(name, payload).catch((error: Error) => {
      if (closed) return;
      if (failed === 0)
        logger.warn('redis publish failed: keeping the latest message per channel', { error: error.message });
      failed += 1;
      unsent.delete(key);
      unsent.set(key, { name, payload });
      if (unsent.size > maxUnsentChannels) {
        unsent.delete(unsent.keys().next().value as string);
        dropped += 1;
      }
    });
  };
  /**
   * Corks the publisher's socket until the microtasks queued so far have run (ioredis writes each
   * command at once): the messages published meanwhile go out in order in one socket write instead
   * of one each. The attempts a grouped start or completion resolves together reach their publish
   * in the same round of microtasks (the same continuation each, resolved by one loop), so a group
   * of N costs one write, not N (each write is a system call: under load the largest single cost of
   * the worker's publishes in a CPU profile).
   *
   * Not until `process.nextTick`: from a microtask, that waits for the whole microtask queue,
   * including everything the publisher's continuation goes on to do (a cancel's GraphQL response,
   * its pg-boss cancel), so the messages left up to several ms after the commit (API: cork to
   * write p50 0.78 / p95 4.2 ms with nextTick, 0.19 / 2.3 with a microtask, bench:latency).
   */
  let corked = false;
  const corkForRound = () => {
    if (corked) return;
    const socket = (publisher as unknown as { stream?: { cork(): void; uncork(): void } }).stream;
    if (!socket) return;
    socket.cork();
    corked = true;
    queueMicrotask(() => {
      corked = false;
      socket.uncork();
    });
  };
  /** As `send` for each, in order, in the round's socket write. */
  const sendMany = (messages: { name: string; payload: unknown; key: string }[]) => {
    corkForRound();
    for (const { name, payload, key } of messages) send(name, payload, key);
  };
  publisher.on('ready', () => {
    setImmediate(() => {
      if (closed || (failed === 0 && unsent.size === 0)) return;
      const pending = [...unsent];
      logger.info('redis publisher reconnected', { failed, resending: pending.length, dropped });
      unsent.clear();
      failed = 0;
      dropped = 0;
      for (const [key, { name, payload }] of pending) send(name, payload, key);
    });
  });

  const unsubscribe = (id: number) => {
    try {
      engine.unsubscribe(id);
    } catch (error) {
      logger.warn('redis unsubscribe failed', { error: (error as Error).message });
    }
  };
  const open = new Set<() => void>();
  return {
    get connected() {
      return connected;
    },
    onConnectionChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    publish(channel, payload, key) {
      corkForRound();
      send(prefix + channel, payload, key === undefined ? undefined : prefix + key);
    },
    publishMany(messages) {
      sendMany(
        messages.map(({ channel, payload, key }) => ({
          name: prefix + channel,
          payload,
          key: prefix + (key ?? channel),
        })),
      );
    },
    async subscribe(channel, onMessage) {
      // A subscription opened during shutdown, after `close`: nothing to send, nothing to end.
      if (closed) return () => {};
      let id: number | undefined;
      let ended = false;
      const subscribed = engine.subscribe(prefix + channel, guarded(onMessage, logger, channel), {});
      catchPendingSubscribe(engine, prefix + channel);
      const acknowledged = subscribed.then(
        (value) => {
          if (ended) unsubscribe(value);
          else id = value;
        },
        (error: Error) => logger.warn('redis subscribe failed', { channel, error: error.message }),
      );
      const end = () => {
        if (ended) return;
        ended = true;
        open.delete(end);
        if (id !== undefined) unsubscribe(id);
      };
      open.add(end);
      // Wait for the acknowledgement while a connection is up or being made, not through an outage.
      if (['connecting', 'connect', 'ready'].includes(subscriber.status)) {
        await new Promise<void>((resolve) => {
          waiting.add(resolve);
          void acknowledged.then(() => {
            waiting.delete(resolve);
            resolve();
          });
        });
      }
      return end;
    },
    async close() {
      for (const end of [...open]) end();
      closed = true;
      listeners.clear();
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
}
