import { RedisPubSub } from 'graphql-redis-subscriptions';
import { PubSub, type PubSubEngine } from 'graphql-subscriptions';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logger.ts';

/**
 * Messages between processes: operation events to subscribers, cancel requests to workers.
 * Redis when configured, in-process otherwise; everything above uses this one interface.
 * Delivery is a fast path only: the database stays the source of truth.
 */
export interface EventBus {
  /** Sends without waiting; messages from one process keep their order. */
  publish(channel: string, payload: unknown): void;
  /** Resolves once the subscription is active; returns the function that ends it. */
  subscribe(channel: string, onMessage: (payload: unknown) => void): Promise<() => void>;
  close(): Promise<void>;
}

export interface EventBusOptions {
  redisUrl: string | undefined;
  prefix: string;
  logger: Logger;
}

export function createEventBus({ redisUrl, prefix, logger }: EventBusOptions): EventBus {
  let engine: PubSubEngine;
  let closeEngine = async () => {};
  if (redisUrl) {
    const options: RedisOptions = { maxRetriesPerRequest: null, lazyConnect: false };
    const publisher = new Redis(redisUrl, options);
    const subscriber = new Redis(redisUrl, options);
    for (const client of [publisher, subscriber]) {
      client.on('error', (error) => logger.warn('redis error', { error: error.message }));
    }
    engine = new RedisPubSub({ publisher, subscriber });
    closeEngine = async () => {
      publisher.disconnect();
      subscriber.disconnect();
    };
  } else {
    engine = new PubSub();
  }
  const open = new Set<number>();
  return {
    publish(channel, payload) {
      engine.publish(prefix + channel, payload).catch((error: Error) => {
        logger.warn('publish failed', { channel, error: error.message });
      });
    },
    async subscribe(channel, onMessage) {
      const id = await engine.subscribe(prefix + channel, onMessage, {});
      open.add(id);
      return () => {
        if (open.delete(id)) engine.unsubscribe(id);
      };
    },
    async close() {
      for (const id of open) engine.unsubscribe(id);
      open.clear();
      await closeEngine();
    },
  };
}
