import type { ResultOf } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { type Client, createClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { parseGlobalId } from '../src/graphql/ids.ts';
import { diagnosticsSleep } from '../src/operations/types/diagnostics-sleep.ts';
import { type ServerProcess, spawnServer, uniquePrefix } from '../test/support/app.ts';
import { gql, tokenFor } from '../test/support/client.ts';
import { CancelOperation, OperationUpdated, StartOperation } from '../test/support/documents.ts';
import { REDIS_URL } from '../test/support/services.ts';
import {
  BENCH_QUOTAS,
  createScratchDatabase,
  defer,
  fixed,
  inParallel,
  percentile,
  printTable,
  readArgs,
  runBench,
  type ScratchDatabase,
  sleep,
  waitForCount,
  withTimeout,
} from './support.ts';

/**
 * Start, progress and cancel latency across processes (SPEC §5): A (OPSGRAPH_ROLE=api) and B
 * (OPSGRAPH_ROLE=worker) are separate processes sharing a scratch database and Redis; this process
 * is the client, sending mutations to A and subscribing on A over graphql-ws. All timestamps come
 * from the one machine clock (this process, B's log lines, PostgreSQL's now()).
 *
 *   npm run bench:latency -- --samples 200 [--concurrency 1] [--progress-ops 4] [--steps 10] [--step-ms 100]
 *
 * - start: mutation sent → the operation's `startedAt` (PENDING → PROCESSING, written by B just
 *   before it calls the handler).
 * - progress: a persisted progress event's `createdAt` (written right after the handler's report;
 *   with stepMs ≥ the progress interval the throttle adds no wait) → received by the subscriber on A.
 * - cancel: cancelOperation sent to A → B's log line "handler signal aborted" for that operation.
 *
 * Indented rows split each path where it can be observed from outside: database timestamps, and
 * the time this process's own Redis subscriber (a tap on the deployment's channels) saw a message.
 */

const args = readArgs({
  samples: { default: 200, min: 200 },
  concurrency: { default: 1, min: 1 },
  'progress-ops': { default: 4, min: 1 },
  steps: { default: 10, min: 1 },
  'step-ms': { default: 100, min: 100 },
});

type Update = ResultOf<typeof OperationUpdated>['operationUpdated'];

interface Received {
  update: Update;
  /** Wall-clock time (ms) this process received the message. */
  at: number;
}

/** One operationUpdated subscription: every message with its arrival time. */
interface Watch {
  received: Received[];
  /** Resolves when the server completes the subscription. */
  done: Promise<void>;
  /** Resolves once a received message matches (rejects after `timeoutMs` or on early end). */
  until(predicate: (update: Update) => boolean, timeoutMs?: number): Promise<void>;
}

function watch(client: Client, id: string): Watch {
  const received: Received[] = [];
  const waiters = new Set<() => void>();
  let ended: Error | null | undefined; // undefined while open, null when completed
  let resolveDone!: () => void;
  let rejectDone!: (error: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  done.catch(() => {}); // reported through `until` or awaited by the caller
  const wake = () => {
    for (const waiter of waiters) waiter();
  };
  client.subscribe<ResultOf<typeof OperationUpdated>>(
    { query: print(OperationUpdated), variables: { id } },
    {
      next: (result) => {
        const at = Date.now();
        if (result.errors) {
          ended = new Error(`subscription error: ${JSON.stringify(result.errors)}`);
          rejectDone(ended);
        } else if (result.data) {
          received.push({ update: result.data.operationUpdated, at });
        }
        wake();
      },
      error: (error) => {
        ended = error instanceof Error ? error : new Error(JSON.stringify(error));
        rejectDone(ended);
        wake();
      },
      complete: () => {
        ended ??= null;
        resolveDone();
        wake();
      },
    },
  );
  const until = (predicate: (update: Update) => boolean, timeoutMs = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`timed out waiting on operation ${id}`)), timeoutMs);
      const finish = (error?: Error) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const check = () => {
        if (received.some((message) => predicate(message.update))) finish();
        else if (ended !== undefined) finish(ended ?? new Error(`operation ${id} ended first`));
      };
      waiters.add(check);
      check();
    });
  return { received, done, until };
}

/** Collects B's "handler signal aborted" log lines: operation id → the line's time (ms). */
function abortTimes(worker: ServerProcess) {
  const times = new Map<string, number>();
  let scanned = 0;
  const scan = () => {
    for (; scanned < worker.logs.length; scanned += 1) {
      const line = worker.logs[scanned]!;
      if (!line.includes('handler signal aborted')) continue;
      // A pino line: `time` in epoch ms.
      const entry = JSON.parse(line) as { time: number; operationId: string };
      if (!times.has(entry.operationId)) times.set(entry.operationId, entry.time);
    }
  };
  return async (operationId: string, timeoutMs = 5000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      scan();
      const time = times.get(operationId);
      if (time !== undefined) return time;
      if (Date.now() > deadline) throw new Error(`B logged no "handler signal aborted" for ${operationId}`);
      await sleep(2);
    }
  };
}

/**
 * Subscribes to the deployment's Redis channels and records when each message passed by: operation
 * events by `<operationId>/<sequence>`, cancel requests by `cancel/<operationId>`.
 */
async function redisTap(prefix: string): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const tap = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  defer(() => tap.disconnect());
  tap.on('pmessage', (_pattern: string, channel: string, message: string) => {
    const at = Date.now();
    const payload = JSON.parse(message) as {
      operationId?: string;
      event?: { operationId: string; sequence: number };
    };
    const key =
      channel === `${prefix}cancel`
        ? `cancel/${payload.operationId}`
        : `${payload.event?.operationId}/${payload.event?.sequence}`;
    if (!seen.has(key)) seen.set(key, at);
  });
  await tap.psubscribe(`${prefix}op:*`, `${prefix}cancel`);
  return seen;
}

/** Starts a process and registers its stop (SIGTERM, then SIGKILL after 10 s). */
async function spawn(env: Record<string, string>): Promise<ServerProcess> {
  const server = await spawnServer(env);
  defer(async () => {
    const killer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
    await server.stop();
    clearTimeout(killer);
  });
  return server;
}

/** One row of the result table. */
interface Row {
  name: string;
  samples: number[];
  /** The p95 target in ms, for the top-level metrics. */
  target?: number;
  note: string;
}

/** What every phase uses: the two processes, a client, and what was observed on the side. */
interface Bench {
  db: ScratchDatabase;
  /** A (api): mutations and subscriptions go here. */
  api: ServerProcess;
  client: Client;
  token: string;
  /** Starts a diagnostics.sleep operation on A; `sentAt` is taken just before the request. */
  start(input: Record<string, unknown>): Promise<{ id: string; uuid: string; sentAt: number }>;
  /** When the Redis tap saw a message (the phases only ask for messages that must have passed). */
  tapped(key: string): number;
  /** When B logged that the handler's signal fired for an operation. */
  abortedAt(operationId: string): Promise<number>;
}

async function setUp(db: ScratchDatabase): Promise<Bench> {
  const prefix = uniquePrefix();
  const shared = {
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: prefix,
    OPSGRAPH_SHUTDOWN_GRACE_MS: '2000',
    ...BENCH_QUOTAS,
  };
  const onRedis = await redisTap(prefix);
  // Settled both, so a process that did start is registered for clean-up even when the other failed.
  const spawned = await Promise.allSettled([
    spawn({ ...shared, OPSGRAPH_ROLE: 'api' }),
    spawn({ ...shared, OPSGRAPH_ROLE: 'worker' }),
  ]);
  const [api, worker] = spawned.map((result) => {
    if (result.status === 'rejected') throw result.reason;
    return result.value;
  }) as [ServerProcess, ServerProcess];
  const token = await tokenFor(db.url, 'bench');
  const client = createClient({
    url: api.url.replace(/^http/, 'ws'),
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  defer(() => client.dispose());

  const start = async (input: Record<string, unknown>) => {
    const sentAt = Date.now();
    const response = await gql(
      api.url,
      StartOperation,
      { input: { type: diagnosticsSleep.name, input } },
      token,
    );
    const result = response.data?.startOperation;
    if (result?.__typename !== 'StartOperationSuccess') {
      throw new Error(`startOperation failed: ${JSON.stringify(response)}`);
    }
    return { id: result.operation.id, uuid: parseGlobalId(result.operation.id, 'Operation'), sentAt };
  };
  const tapped = (key: string) => {
    const at = onRedis.get(key);
    if (at === undefined) throw new Error(`the Redis tap saw no message ${key}`);
    return at;
  };
  return { db, api, client, token, start, tapped, abortedAt: abortTimes(worker) };
}

/** Start: sent → startedAt, split where the start's statement began and where it committed (CREATED published). */
async function measureStart(bench: Bench): Promise<Row[]> {
  const { db, start, tapped } = bench;
  const started = await inParallel(args.samples, args.concurrency, () => start({ steps: 0, stepMs: 0 }));
  const uuids = started.map((op) => op.uuid);
  const begun = await waitForCount(
    db.pool,
    `SELECT count(*)::int AS n FROM "Operation" WHERE id = ANY($1::uuid[]) AND "startedAt" IS NOT NULL`,
    [uuids],
    uuids.length,
    { stallMs: 10_000 },
  );
  if (begun.stalled) {
    throw new Error(
      `${uuids.length - begun.n} operations were not started by B within 10 s of the last start`,
    );
  }
  const { rows } = await db.pool.query<{ id: string; createdAt: Date; startedAt: Date }>(
    `SELECT id, "createdAt", "startedAt" FROM "Operation" WHERE id = ANY($1::uuid[])`,
    [uuids],
  );
  const sentAt = new Map(started.map((op) => [op.uuid, op.sentAt]));
  // CREATED (sequence 1) is published by A right after the insert's transaction committed.
  const committed = (row: { id: string }) => tapped(`${row.id}/1`);
  return [
    {
      name: 'start',
      samples: rows.map((row) => row.startedAt.getTime() - sentAt.get(row.id)!),
      target: 25,
      note: 'sent → startedAt',
    },
    {
      name: '  sent → insert began',
      samples: rows.map((row) => row.createdAt.getTime() - sentAt.get(row.id)!),
      note: 'A: HTTP, auth, GraphQL',
    },
    {
      name: '  → committed',
      samples: rows.map((row) => committed(row) - row.createdAt.getTime()),
      note: 'A: the start statement, COMMIT; CREATED on Redis',
    },
    {
      name: '  → claimed',
      samples: rows.map((row) => row.startedAt.getTime() - committed(row)),
      note: 'NOTIFY → B: fetch, claim UPDATE',
    },
  ];
}

/**
 * Progress: a persisted event's createdAt → received on A's subscription, split where the Redis
 * tap saw it. Only live messages count (sequence after the first message, the snapshot).
 */
async function measureProgress(bench: Bench): Promise<Row[]> {
  const { db, client, start, tapped } = bench;
  const operations = Math.ceil(args.samples / args.steps) + 1;
  const received = await inParallel(operations, args['progress-ops'], async () => {
    const op = await start({ steps: args.steps, stepMs: args['step-ms'] });
    const w = watch(client, op.id);
    await withTimeout(w.done, 30_000, `operation ${op.uuid} to complete`);
    const snapshot = w.received[0]!.update.sequence;
    return w.received
      .filter(({ update }) => update.event?.kind === 'PROGRESS' && update.sequence > snapshot)
      .map(({ update, at }) => ({ key: `${op.uuid}/${update.sequence}`, uuid: op.uuid, at }));
  });
  const live = received.flat();
  const { rows } = await db.pool.query<{ operationId: string; sequence: number; createdAt: Date }>(
    `SELECT "operationId", sequence, "createdAt" FROM "OperationEvent"
      WHERE kind = 'PROGRESS' AND "operationId" = ANY($1::uuid[])`,
    [[...new Set(live.map((event) => event.uuid))]],
  );
  const persisted = new Map(
    rows.map((row) => [`${row.operationId}/${row.sequence}`, row.createdAt.getTime()]),
  );
  return [
    {
      name: 'progress',
      samples: live.map((event) => event.at - persisted.get(event.key)!),
      target: 50,
      note: 'event createdAt → received on A',
    },
    {
      name: '  → on Redis',
      samples: live.map((event) => tapped(event.key) - persisted.get(event.key)!),
      note: 'B: commit, publish',
    },
    {
      name: '  → at subscriber',
      samples: live.map((event) => event.at - tapped(event.key)),
      note: 'A: Redis → graphql-ws → client',
    },
  ];
}

/**
 * Cancel: once the handler runs (a progress report seen, so B has attached its abort listener),
 * cancelOperation sent to A → B logs the abort; split at the cancelling UPDATE and where the
 * Redis tap saw the cancel request.
 */
async function measureCancel(bench: Bench): Promise<Row[]> {
  const { db, api, client, token, start, tapped, abortedAt } = bench;
  const cancelled = await inParallel(args.samples, args.concurrency, async () => {
    const op = await start({ steps: 100_000, stepMs: 20 });
    const w = watch(client, op.id);
    await w.until((update) => update.operation.progress.current >= 1);
    const sentAt = Date.now();
    const response = await gql(api.url, CancelOperation, { id: op.id }, token);
    if (response.data?.cancelOperation.__typename !== 'CancelOperationSuccess') {
      throw new Error(`cancelOperation failed: ${JSON.stringify(response)}`);
    }
    const abortAt = await abortedAt(op.uuid);
    await withTimeout(w.done, 10_000, `operation ${op.uuid} to end as CANCELLED`);
    return { uuid: op.uuid, sentAt, abortAt };
  });
  const { rows } = await db.pool.query<{ id: string; completedAt: Date }>(
    `SELECT id, "completedAt" FROM "Operation" WHERE id = ANY($1::uuid[])`,
    [cancelled.map((c) => c.uuid)],
  );
  const updatedAt = new Map(rows.map((row) => [row.id, row.completedAt.getTime()]));
  return [
    {
      name: 'cancel',
      samples: cancelled.map((c) => c.abortAt - c.sentAt),
      target: 100,
      note: 'sent → abort logged on B',
    },
    {
      name: '  sent → cancel UPDATE',
      samples: cancelled.map((c) => updatedAt.get(c.uuid)! - c.sentAt),
      note: 'A: HTTP, auth, lookup',
    },
    {
      name: '  → on Redis',
      samples: cancelled.map((c) => tapped(`cancel/${c.uuid}`) - updatedAt.get(c.uuid)!),
      note: 'A: commit, publish',
    },
    {
      name: '  → aborted',
      samples: cancelled.map((c) => c.abortAt - tapped(`cancel/${c.uuid}`)),
      note: 'B: Redis message, abort, log',
    },
  ];
}

await runBench(async () => {
  console.log(
    `latency: ≥${args.samples} samples per metric; A = api process, B = worker process, client = this process ` +
      `(graphql-ws subscriptions on A); start/cancel: ${args.concurrency} operation(s) at a time; progress: ` +
      `${args['progress-ops']} operation(s) at a time, ${args.steps} steps × ${args['step-ms']} ms`,
  );
  const db = await createScratchDatabase('latency', { migrate: true });
  const bench = await setUp(db);
  // Warm-up: connections, JIT, the first subscriptions.
  for (let i = 0; i < 10; i += 1) {
    const op = await bench.start({ steps: 1, stepMs: 1 });
    await withTimeout(watch(bench.client, op.id).done, 30_000, 'a warm-up operation to complete');
  }
  const rows = [
    ...(await measureStart(bench)),
    ...(await measureProgress(bench)),
    ...(await measureCancel(bench)),
  ];

  printTable(
    'Latency in ms; indented rows split the row above into consecutive parts',
    ['metric', 'samples', 'p50', 'p95', 'max', 'target p95', 'met', 'measured as'],
    rows.map((row) => {
      const p95 = percentile(row.samples, 95);
      return [
        row.name,
        String(row.samples.length),
        fixed(percentile(row.samples, 50)),
        fixed(p95),
        fixed(Math.max(...row.samples)),
        row.target === undefined ? '' : `≤ ${row.target}`,
        row.target === undefined ? '' : p95 <= row.target ? 'yes' : 'NO',
        row.note,
      ];
    }),
  );
  console.log(
    "\nHow: send/receive times (Date.now in this process), B's log times and PostgreSQL now() read the same " +
      'machine clock at 1 ms resolution (±1 ms per sample). startedAt, createdAt and the cancel time are the ' +
      "start of the writing statement's transaction: start ends just before B calls the handler. Progress " +
      "begins at the event's write, which follows the handler's report by a timer tick (the throttle waits " +
      `no longer while stepMs ${args['step-ms']} ≥ OPSGRAPH_PROGRESS_INTERVAL_MS, default 100).`,
  );
});
