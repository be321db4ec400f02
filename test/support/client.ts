import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { type ExecutionResult, print } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { issueToken } from '../../src/auth/viewer.ts';
import { createDb } from '../../src/db/prisma.ts';
import { TEST_JWT_SECRET } from './app.ts';

/** Creates (or finds) a user and returns a bearer token for it. */
export async function tokenFor(databaseUrl: string, name: string, admin = false): Promise<string> {
  const db = createDb(databaseUrl, { poolSize: 1 });
  try {
    return await issueToken(db, TEST_JWT_SECRET, name, admin);
  } finally {
    await db.$disconnect();
  }
}

export interface GqlResponse<T> extends ExecutionResult<T> {
  status: number;
}

/** One GraphQL request over HTTP. */
export async function gql<T, V>(
  url: string,
  document: TypedDocumentNode<T, V>,
  variables: V,
  token?: string | null,
): Promise<GqlResponse<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query: print(document), variables }),
  });
  return { status: response.status, ...((await response.json()) as ExecutionResult<T>) };
}

/** A subscription being collected: every message, and whether it completed or failed. */
export interface Collected<T> {
  messages: T[];
  errors: unknown[];
  /** Resolves when the server completes the subscription (or it errors). */
  done: Promise<void>;
  /** Resolves once at least `count` messages arrived (rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<T[]>;
  /** Resolves on the first message that matches. */
  waitUntil(predicate: (message: T) => boolean, timeoutMs?: number): Promise<T>;
  close(): void;
}

function collector<T>(): {
  collected: Collected<T>;
  next(value: T): void;
  error(error: unknown): void;
  complete(): void;
} {
  const messages: T[] = [];
  const errors: unknown[] = [];
  const waiters = new Set<() => void>();
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let finished = false;
  const notify = () => {
    for (const waiter of waiters) waiter();
  };
  const wait = (check: () => boolean, timeoutMs: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const test = () => {
        if (check()) {
          cleanup();
          resolve();
        } else if (finished) {
          cleanup();
          reject(new Error(`subscription ended before ${what}: ${JSON.stringify({ messages, errors })}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify({ messages, errors })}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(test);
      };
      waiters.add(test);
      test();
    });
  const collected: Collected<T> = {
    messages,
    errors,
    done,
    close: () => {},
    waitFor: async (count, timeoutMs = 15_000) => {
      await wait(() => messages.length >= count, timeoutMs, `${count} messages`);
      return messages;
    },
    waitUntil: async (predicate, timeoutMs = 15_000) => {
      await wait(() => messages.some(predicate), timeoutMs, 'a matching message');
      return messages.find(predicate) as T;
    },
  };
  return {
    collected,
    next: (value) => {
      messages.push(value);
      notify();
    },
    error: (error) => {
      errors.push(error);
      finished = true;
      finish();
      notify();
    },
    complete: () => {
      finished = true;
      finish();
      notify();
    },
  };
}

/** The part of graphql-ws's and graphql-sse's clients that collect() needs. */
interface SubscribingClient {
  subscribe<T>(
    payload: { query: string; variables: Record<string, unknown> },
    sink: { next(value: ExecutionResult<T>): void; error(error: unknown): void; complete(): void },
  ): () => void;
  dispose(): void | Promise<void>;
}

function collect<T, V>(
  client: SubscribingClient,
  document: TypedDocumentNode<T, V>,
  variables: V,
): Collected<T> {
  const { collected, next, error, complete } = collector<T>();
  const stop = client.subscribe<T>(
    { query: print(document), variables: variables as Record<string, unknown> },
    {
      next: (result) => (result.errors ? error(result.errors) : next(result.data as T)),
      error: (e) => error(e),
      complete,
    },
  );
  collected.close = () => {
    stop();
    void client.dispose();
  };
  collected.done.finally(() => void client.dispose());
  return collected;
}

/** Subscribes over graphql-ws (WebSocket), authenticating with connectionParams. */
export function subscribeWs<T, V>(
  url: string,
  document: TypedDocumentNode<T, V>,
  variables: V,
  token?: string | null,
): Collected<T> {
  const client = createWsClient({
    url: url.replace(/^http/, 'ws'),
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
  return collect(client, document, variables);
}

/** Subscribes over GraphQL over SSE (distinct connections mode), authenticating with the header. */
export function subscribeSse<T, V>(
  url: string,
  document: TypedDocumentNode<T, V>,
  variables: V,
  token?: string | null,
): Collected<T> {
  const client = createSseClient({
    url,
    singleConnection: false,
    retryAttempts: 0,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return collect(client, document, variables);
}
