import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ExecutionResult, print } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { resolveViewer } from '../../src/auth/viewer.ts';
import { type OperationUpdate, operationUpdates, ResubscribeError } from '../../src/operations/updates.ts';
import type { OperationUpdatedSubscription } from '../gql/graphql.ts';
import {
  type ServerProcess,
  spawnServer,
  startTestApp,
  TEST_JWT_SECRET,
  uniquePrefix,
} from '../support/app.ts';
import { gql, subscribeWs, tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { OperationUpdated, StartOperation } from '../support/documents.ts';
import { REDIS_URL } from '../support/services.ts';

type Update = OperationUpdatedSubscription['operationUpdated'];

let db: TestDatabase;
let server: ServerProcess | undefined;
let token: string;
/** Live updates one subscriber may have waiting before it is closed, on the spawned server. */
// Small enough that the stalled subscriptions overflow long before the operation's updates end
// (the kernel's socket buffers take ~235 of them, so ~300 overflow it); large enough that a reading subscriber is not
// closed by a 40 ms scheduling pause of a 2-core machine running another test file (500 updates/s).
const MAX_BACKLOG = 60;

beforeAll(async () => {
  db = await createTestDatabase();
  // API and worker in one process: a slow subscriber there must not hold up the worker next to it.
  server = await spawnServer({
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
    OPSGRAPH_SUBSCRIPTION_MAX_BACKLOG: String(MAX_BACKLOG),
    OPSGRAPH_PROGRESS_INTERVAL_MS: '0',
  });
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function start(url: string, steps: number, stepMs: number, as = token): Promise<string> {
  const response = await gql(
    url,
    StartOperation,
    { input: { type: 'diagnostics.sleep', input: { steps, stepMs } } },
    as,
  );
  const result = response.data?.startOperation;
  if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
  return result.operation.id;
}

const uuidOf = (id: string) => Buffer.from(id, 'base64').toString().split(':')[1]!;

/** How long the operation ran on its worker (started → completed), in ms. */
async function runtimeMs(operationId: string, database = db): Promise<number> {
  for (;;) {
    const [row] = await database.query<{ status: string; ms: number }>(
      `SELECT status::text, (extract(epoch FROM "completedAt" - "startedAt") * 1000)::int AS ms
         FROM "Operation" WHERE id = $1`,
      [uuidOf(operationId)],
    );
    if (row?.status === 'COMPLETED') return row.ms;
    await sleep(50);
  }
}

interface Sub {
  updates: Update[];
  errors: { message: string; extensions?: Record<string, unknown> }[];
  /** Ended: `complete`, or an `error` message (which ends a graphql-ws operation by itself). */
  ended: boolean;
}

/**
 * A graphql-ws client on a raw socket with `count` subscriptions to one operation. When `stall`,
 * it stops reading its socket once every subscription has its snapshot, until `resume()`.
 */
async function rawClient(url: string, operationId: string, count: number, stall: boolean) {
  const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  const subs = new Map<string, Sub>();
  let acknowledged = false;
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id?: string; type: string; payload?: ExecutionResult };
    if (message.type === 'connection_ack') acknowledged = true;
    const sub = message.id ? subs.get(message.id) : undefined;
    if (!sub) return;
    if (message.type === 'next') {
      sub.updates.push((message.payload!.data as OperationUpdatedSubscription).operationUpdated);
    } else if (message.type === 'error') {
      sub.errors.push(...(message.payload as unknown as Sub['errors']));
      sub.ended = true;
    } else if (message.type === 'complete') sub.ended = true;
  });
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  await until(() => acknowledged, 5000);
  for (let i = 0; i < count; i += 1) {
    subs.set(`s${i}`, { updates: [], errors: [], ended: false });
    socket.send(
      JSON.stringify({
        id: `s${i}`,
        type: 'subscribe',
        payload: { query: print(OperationUpdated), variables: { id: operationId } },
      }),
    );
  }
  await until(() => [...subs.values()].every((sub) => sub.updates.length > 0), 10_000);
  const raw = (socket as unknown as { _socket: Socket })._socket;
  if (stall) raw.pause();
  return {
    subs,
    resume: () => raw.resume(),
    close: () => socket.terminate(),
  };
}

async function until(check: () => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}

const expectConsecutive = (sequences: number[]) => {
  for (let i = 1; i < sequences.length; i += 1) expect(sequences[i]).toBe(sequences[i - 1]! + 1);
};

describe('backpressure: a subscriber that stops reading its WebSocket', () => {
  it('holds up neither the worker nor other subscribers, and is closed with the sequence to resume after', async () => {
    // 1,500 steps of 2 ms: a busy worker persists fewer progress events than steps (a step reported
    // while the previous one is being written replaces it), and the stalled subscriptions must see
    // well over the ~300 updates that overflow them (with 600 steps a loaded run persisted ~300).
    const steps = 1500;
    const stepMs = 2;
    // 40 subscriptions on one socket: enough bytes to fill the kernel's socket buffers (~4 MB on
    // loopback) quickly, after which the server's sends stall and updates queue up in the stream.
    const subscriptions = 40;
    // Control: the same operation watched by 40 subscriptions that do read.
    const control = await start(server!.url, steps, stepMs);
    const reading = await rawClient(server!.url, control, subscriptions, false);
    const controlMs = await runtimeMs(control);
    await until(() => [...reading.subs.values()].every((sub) => sub.ended), 20_000);
    reading.close();

    const operationId = await start(server!.url, steps, stepMs);
    const slow = await rawClient(server!.url, operationId, subscriptions, true);
    const normal = subscribeWs(server!.url, OperationUpdated, { id: operationId }, token);
    const arrivals: number[] = [];
    const stamp = setInterval(() => {
      while (arrivals.length < normal.messages.length) arrivals.push(Date.now());
    }, 1);
    await normal.done;
    clearInterval(stamp);
    const withSlowMs = await runtimeMs(operationId);
    const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]!);

    expect(normal.errors).toEqual([]);
    const seen = normal.messages.map((m) => m.operationUpdated);
    expect(seen.at(-1)!.event?.kind).toBe('COMPLETED');
    expectConsecutive(seen.map((u) => u.sequence));

    // Now read what the slow client was sent: for each subscription, consecutive updates, then an
    // `error` message naming the last of them.
    slow.resume();
    await until(() => [...slow.subs.values()].every((sub) => sub.ended), 20_000);
    slow.close();
    const received: number[] = [];
    for (const [id, sub] of slow.subs) {
      const sequences = sub.updates.map((u) => u.sequence);
      expectConsecutive(sequences);
      expect(sub.errors, id).toHaveLength(1);
      const [error] = sub.errors;
      expect(error!.extensions).toMatchObject({
        code: 'SUBSCRIBER_TOO_SLOW',
        retryable: true,
        afterSequence: sequences.at(-1),
      });
      expect(error!.message).toContain(`afterSequence: ${sequences.at(-1)}`);
      expect(sub.updates.at(-1)!.event?.kind).not.toBe('COMPLETED');
      received.push(sub.updates.length);
    }
    const first = [...slow.subs.values()][0]!;
    console.log(
      `operation runtime with ${subscriptions} reading subscriptions ${controlMs} ms, with ${subscriptions} stalled ones ${withSlowMs} ms; ` +
        `other subscriber got ${seen.length} messages, longest gap ${Math.max(...gaps)} ms; ` +
        `stalled subscriptions were closed after ${Math.min(...received)}–${Math.max(...received)} of ${seen.at(-1)!.sequence} updates ` +
        `(bound ${MAX_BACKLOG}); first error: ${first.errors[0]!.message}`,
    );
    // The operation finished while the stalled client had read nothing, no slower than with clients
    // that read: the worker never waited for it.
    expect(withSlowMs).toBeLessThan(controlMs * 1.5 + 500);

    // Resuming with afterSequence gets exactly the rest.
    const resumedAfter = first.updates.at(-1)!.sequence;
    const rest = subscribeWs(
      server!.url,
      OperationUpdated,
      { id: operationId, afterSequence: resumedAfter },
      token,
    );
    await rest.done;
    expect(rest.errors).toEqual([]);
    const all = [...first.updates, ...rest.messages.map((m) => m.operationUpdated)].map((u) => u.sequence);
    expectConsecutive(all);
    expect(all.at(-1)).toBe(seen.at(-1)!.sequence);
  });
});

describe('backpressure: the stream itself', () => {
  // Its own database: the spawned server above must not run (and publish elsewhere) these jobs.
  let own: TestDatabase;
  let app: Awaited<ReturnType<typeof startTestApp>>;
  let ownToken: string;
  beforeAll(async () => {
    own = await createTestDatabase();
    app = await startTestApp(own.url, { subscriptionMaxBacklog: 5, progressIntervalMs: 0 });
    ownToken = await tokenFor(own.url, 'alice');
  });
  afterAll(async () => {
    await app?.close();
    await own?.drop();
  });

  it('queues at most the bound of live updates for a consumer that stops pulling, then fails with ResubscribeError', async () => {
    const operationId = await start(app.url, 30, 20, ownToken);
    const viewer = (await resolveViewer(app.resources.db, TEST_JWT_SECRET, `Bearer ${ownToken}`))!;
    const stream = await operationUpdates(app.resources, viewer, uuidOf(operationId), operationId, null);
    const iterator = stream[Symbol.asyncIterator]();
    const snapshot = (await iterator.next()).value as OperationUpdate;
    // Not pulling while the operation runs to completion.
    await runtimeMs(operationId, own);
    const pulled: OperationUpdate[] = [];
    let failure: unknown;
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        pulled.push(next.value);
      }
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(ResubscribeError);
    const error = failure as ResubscribeError;
    expect(error.code).toBe('SUBSCRIBER_TOO_SLOW');
    // Only what was handed over before the queue filled was kept: at most one update.
    expect(pulled.length).toBeLessThanOrEqual(1);
    expect(error.afterSequence).toBe(pulled.at(-1)?.sequence ?? snapshot.sequence);
    expect(error.message).toContain(`afterSequence: ${error.afterSequence}`);
  });
});
