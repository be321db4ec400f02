import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from './context.ts';

export interface SseStreamOptions {
  /** Subscription streams over HTTP (SSE) one user may hold on this instance. */
  maxPerUser: number;
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> =>
  typeof value === 'object' && value !== null && Symbol.asyncIterator in value;

/**
 * Counts each user's subscription streams over HTTP (SSE) and refuses one above `maxPerUser`
 * with `TOO_MANY_STREAMS` before it subscribes. A stream counts from its subscribe until it ends
 * (completed, failed or the client went away). WebSocket subscriptions have their own limit.
 */
export function useSseStreamLimit({ maxPerUser }: SseStreamOptions): Plugin<Context> {
  const open = new Map<string, number>();
  const release = (userId: string) => {
    const left = (open.get(userId) ?? 1) - 1;
    if (left > 0) open.set(userId, left);
    else open.delete(userId);
  };
  return {
    onSubscribe({ args, setResultAndStopExecution, subscribeFn, setSubscribeFn }) {
      const context = args.contextValue as Context & { socket?: unknown };
      const userId = context.viewer?.id;
      if (!userId || context.socket) return;
      const held = open.get(userId) ?? 0;
      if (held >= maxPerUser) {
        setResultAndStopExecution({
          errors: [
            new GraphQLError(`Too many subscription streams for this user (limit ${maxPerUser}).`, {
              // No HTTP status: the refusal travels in the event stream, where SSE clients read it.
              extensions: { code: 'TOO_MANY_STREAMS', limit: maxPerUser, measured: held + 1 },
            }),
          ],
        });
        return;
      }
      open.set(userId, held + 1);
      let released = false;
      const once = () => {
        if (!released) {
          released = true;
          release(userId);
        }
      };
      setSubscribeFn(async (subscribeArgs) => {
        try {
          return await subscribeFn(subscribeArgs);
        } catch (error) {
          once();
          throw error;
        }
      });
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) {
            once();
            return;
          }
          return { onEnd: once };
        },
      };
    },
  };
}
