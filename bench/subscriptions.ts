import { Redis } from 'ioredis';
import { issueToken } from '../src/auth/viewer.ts';
import { createDb } from '../src/db/prisma.ts';
import { parseGlobalId } from '../src/graphql/ids.ts';
import { diagnosticsSleep } from '../src/operations/types/diagnostics-sleep.ts';
import { type ServerProcess, spawnServer, TEST_JWT_SECRET, uniquePrefix } from '../test/support/app.ts';
import { gql } from '../test/support/client.ts';
import { CancelOperation, StartOperation } from '../test/support/documents.ts';
import { REDIS_URL } from '../test/support/services.ts';
import { INSPECT_ENV, Inspector } from './inspector.ts';
import { LiveConnection, type LiveSubscription } from './live-client.ts';
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
} from './support.ts';

/**
 * Subscriptions at scale (issue 13, SPEC §5): how many `operationUpdated` subscriptions one API
 * instance holds, what each costs in memory, and how fast one event reaches many subscribers.
 *
 *   npm run bench:subscriptions [-- --subscriptions 10000 --per-connection 100 --operations 1000
 *     --progressing 100 --steps 5 --step-ms 1000 --fanout 1000 --fanout-events 20]
 *
 * Processes: A and B (OPSGRAPH_ROLE=api), W (OPSGRAPH_ROLE=worker, started once the subscriptions
 * are in place), one scratch database, Redis; this process is every client (bench/live-client.ts:
 * many subscriptions per socket). The server limits stay at their defaults: 100 users with one
 * connection of 100 subscriptions each on A (10 connections per user and 100 subscriptions per
 * connection are allowed), and for the fan-out 1,000 connections of one subscription each, 5 per
 * user per instance.
 *
 * Every operation is a `diagnostics.sleep` of one owner acting on the owner's public collection
 * (attached in SQL: the diagnostics type has no collection input), and every subscriber is another
 * user who sees it only through that collection — the costliest visibility case, re-checked on
 * every message.
 *
 * 1. Held: the subscriptions spread over `operations` operations (`progressing` of them queued,
 *    the rest scheduled a day ahead), each with subscriptions / operations subscribers of
 *    different users. Memory of A is read through the V8 inspector after a full GC
 *    (bench/inspector.ts) before the first subscription and once all have their first message.
 * 2. Under load: W starts and runs the `progressing` operations at once (`steps` progress events
 *    `step-ms` apart each) while A holds all the subscriptions.
 * 3. Fan-out: one long-running operation, `fanout` subscribers, half on A and half on B; the
 *    first `fanout-events` progress events after every subscriber has its first message.
 *
 * Delivery time = the time this process received the message (Date.now at the socket's message
 * event) − the event's `createdAt` (PostgreSQL's now() of the transaction that wrote it, on W).
 * Both read the same machine clock, at 1 ms resolution.
 *
 * A's CPU time (`process.cpuUsage()` through the inspector) during phases 2 and 3, per delivery it
 * made, compares runs on a loaded machine where delivery times are mostly waits for a core.
 * `PROFILE_HEAP=1` prints the live bytes per subscription by allocation site; `PROFILE_CPU=1` the
 * functions A spent its CPU in during the fan-out.
 */

const args = readArgs({
  subscriptions: { default: 10_000, min: 1 },
  'per-connection': { default: 100, min: 1 },
  operations: { default: 1000, min: 1 },
  progressing: { default: 100, min: 1 },
  steps: { default: 5, min: 1 },
  'step-ms': { default: 1000, min: 100 },
  fanout: { default: 1000, min: 2 },
  'fanout-events': { default: 20, min: 1 },
});
if (args.progressing > args.operations) {
  console.error('--progressing must be at most --operations');
  process.exit(2);
}

/** What a dashboard row shows. */
const WATCH = `subscription Watch($id: ID!) {
  operationUpdated(id: $id) {
    sequence
    event { kind createdAt }
    operation { status progress { current total message } }
  }
}`;

interface Update {
  operationUpdated: {
    sequence: number;
    event: { kind: string; createdAt: string } | null;
    operation: { status: string };
  };
}
type Watch = LiveSubscription<Update>;

/** Connections per user per instance the server allows by default (OPSGRAPH_WS_MAX_CONNECTIONS_PER_USER). */
const CONNECTIONS_PER_USER = 10;

/** Starts a process (given 2 minutes: on a loaded 2-core machine a start has taken over 30 s). */
async function spawn(env: Record<string, string>): Promise<ServerProcess> {
  const server = await spawnServer(env, { startTimeoutMs: 120_000 });
  defer(async () => {
    const killer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
    await server.stop();
    clearTimeout(killer);
  });
  return server;
}

/** Polls until `done()` (parsing what every connection received first); throws after `timeoutMs`. */
async function until(
  connections: readonly LiveConnection[],
  done: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const connection of connections) connection.drain();
    if (done()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

const updates = (watch: Watch) => watch.messages.map((m) => ({ at: m.at, ...m.data.operationUpdated }));

/** One delivery, split where this process's Redis tap saw the event. */
interface Sample {
  sequence: number;
  /** Event createdAt → received here. */
  total: number;
  /** createdAt → seen on Redis (W: commit, publish). */
  toRedis: number;
  /** Seen on Redis → received here (API instance: fan-out, GraphQL, socket; this process). */
  fromRedis: number;
}

/** The PROGRESS events with sequence in (after, upTo] that a subscription to `id` received. */
function deliveries(
  tapped: Map<string, number>,
  id: string,
  watch: Watch,
  after = 0,
  upTo = Number.POSITIVE_INFINITY,
): Sample[] {
  const uuid = parseGlobalId(id, 'Operation');
  return updates(watch)
    .filter((u) => u.event?.kind === 'PROGRESS' && u.sequence > after && u.sequence <= upTo)
    .map((u) => {
      const written = Date.parse(u.event!.createdAt);
      const onRedis = tapped.get(`${uuid}/${u.sequence}`) ?? Number.NaN;
      return {
        sequence: u.sequence,
        total: u.at - written,
        toRedis: onRedis - written,
        fromRedis: u.at - onRedis,
      };
    });
}

function failures(watches: readonly Watch[]): string[] {
  return watches.flatMap((watch) => watch.errors.map((error) => JSON.stringify(error).slice(0, 300)));
}

/**
 * This process's own subscriber to the deployment's operation channels: when each event passed
 * through Redis, by `<operation uuid>/<sequence>`, to split a delivery time at the Redis hop.
 */
async function redisTap(prefix: string): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const tap = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  defer(() => tap.disconnect());
  tap.on('pmessage', (_pattern: string, _channel: string, message: string) => {
    const at = Date.now();
    const { event } = JSON.parse(message) as { event: { operationId: string; sequence: number } };
    const key = `${event.operationId}/${event.sequence}`;
    if (!seen.has(key)) seen.set(key, at);
  });
  await tap.psubscribe(`${prefix}op:*`);
  return seen;
}

/** Subscriptions awaiting their first message at once (see `subscribeAll`). */
const SUBSCRIBE_WINDOW = 200;

/**
 * Subscribes to each planned operation on its connection, with at most SUBSCRIBE_WINDOW waiting
 * for their first message at a time: a burst of thousands at once makes the API's database pool
 * queue reads beyond its connection timeout (README, Benchmarks). Resolves once every
 * subscription has its first message; throws when one failed.
 */
async function subscribeAll(
  connections: readonly LiveConnection[],
  plan: readonly { connection: LiveConnection; id: string }[],
): Promise<Watch[]> {
  const watches: Watch[] = [];
  let waiting: Watch[] = [];
  await until(
    connections,
    () => {
      waiting = waiting.filter((w) => w.messages.length === 0 && !w.done);
      while (watches.length < plan.length && waiting.length < SUBSCRIBE_WINDOW) {
        const { connection, id } = plan[watches.length]!;
        const watch = connection.subscribe<Update>(WATCH, { id });
        watches.push(watch);
        waiting.push(watch);
      }
      return watches.length === plan.length && waiting.length === 0;
    },
    600_000,
    `${plan.length} first messages`,
  );
  const refused = failures(watches);
  if (refused.length > 0) throw new Error(`subscriptions failed: ${refused.slice(0, 3).join('; ')}`);
  return watches;
}

interface Setup {
  /** When each event passed through Redis (`redisTap`). */
  tapped: Map<string, number>;
  db: ScratchDatabase;
  a: ServerProcess;
  b: ServerProcess;
  /** W's environment (it starts later). */
  workerEnv: Record<string, string>;
  ownerToken: string;
  tokens: string[];
  /** Global ids: `progressing` queued first, then the scheduled ones. */
  operations: string[];
  /** The fan-out operation (queued). */
  fanoutOperation: string;
}

async function setUp(): Promise<Setup> {
  const db = await createScratchDatabase('subscriptions', { migrate: true });
  const prefix = uniquePrefix();
  const tapped = await redisTap(prefix);
  const shared = {
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: prefix,
    OPSGRAPH_SHUTDOWN_GRACE_MS: '2000',
    OPSGRAPH_API_POOL_SIZE: '10',
    ...BENCH_QUOTAS,
  };
  const spawned = await Promise.allSettled([
    spawn({ ...shared, ...INSPECT_ENV, OPSGRAPH_ROLE: 'api' }),
    spawn({ ...shared, OPSGRAPH_ROLE: 'api' }),
  ]);
  const [a, b] = spawned.map((result) => {
    if (result.status === 'rejected') throw result.reason;
    return result.value;
  }) as [ServerProcess, ServerProcess];

  const users = Math.max(
    Math.ceil(args.subscriptions / args['per-connection']),
    Math.ceil(args.fanout / 2 / CONNECTIONS_PER_USER),
  );
  const prisma = createDb(db.url, { poolSize: 4 });
  defer(() => prisma.$disconnect());
  const ownerToken = await issueToken(prisma, TEST_JWT_SECRET, 'owner');
  const tokens = await inParallel(users, 4, (u) => issueToken(prisma, TEST_JWT_SECRET, `viewer-${u}`));

  const start = async (input: Record<string, unknown>, runAt?: string) => {
    const response = await gql(
      a.url,
      StartOperation,
      { input: { type: diagnosticsSleep.name, input, runAt } },
      ownerToken,
    );
    const result = response.data?.startOperation;
    if (result?.__typename !== 'StartOperationSuccess') {
      throw new Error(`startOperation failed: ${JSON.stringify(response).slice(0, 500)}`);
    }
    return result.operation.id;
  };
  const later = new Date(Date.now() + 86_400_000).toISOString();
  const operations = await inParallel(args.operations, 8, (i) =>
    i < args.progressing
      ? start({ steps: args.steps, stepMs: args['step-ms'] })
      : start({ steps: 1, stepMs: 0 }, later),
  );
  // Long enough for any run; cancelled once measured.
  const fanoutOperation = await start({ steps: 100_000, stepMs: 250 });
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO "Collection" (name, "ownerId", "isPublic")
     SELECT 'watched', id, true FROM "User" WHERE name = 'owner' RETURNING id`,
  );
  await db.pool.query(`UPDATE "Operation" SET "collectionId" = $1`, [rows[0]!.id]);
  const workerEnv = {
    ...shared,
    OPSGRAPH_ROLE: 'worker',
    OPSGRAPH_WORKER_CONCURRENCY: String(args.progressing + 1),
    OPSGRAPH_WORKER_POOL_SIZE: '10',
  };
  return { tapped, db, a, b, workerEnv, ownerToken, tokens, operations, fanoutOperation };
}

const kb = (bytes: number) => fixed(bytes / 1024, 1);
const mb = (bytes: number) => fixed(bytes / 1024 / 1024, 1);

/**
 * The deliveries owed to the subscribers of the first `count` operations: their PROGRESS events
 * as stored (the worker persists at most one report per OPSGRAPH_PROGRESS_INTERVAL_MS).
 */
async function progressEvents(setup: Setup, byOperation: Map<string, Watch[]>, count: number) {
  const ids = setup.operations.slice(0, count);
  const { rows } = await setup.db.pool.query<{ id: string; n: number }>(
    `SELECT "operationId" AS id, count(*)::int AS n FROM "OperationEvent"
      WHERE kind = 'PROGRESS' AND "operationId" = ANY($1::uuid[]) GROUP BY 1`,
    [ids.map((id) => parseGlobalId(id, 'Operation'))],
  );
  const stored = new Map(rows.map((row) => [row.id, row.n]));
  return ids.reduce(
    (sum, id) => sum + (stored.get(parseGlobalId(id, 'Operation')) ?? 0) * (byOperation.get(id)?.length ?? 0),
    0,
  );
}

/** Phases 1 and 2: the held subscriptions on A, their memory, then the progressing operations. */
async function heldAndUnderLoad(setup: Setup) {
  const { a, tokens, operations } = setup;
  const perConnection = args['per-connection'];
  const connectionsNeeded = Math.ceil(args.subscriptions / perConnection);
  // Warm-up (code paths, pools, the first channels), closed before the baseline.
  const warm = await LiveConnection.open(a.url, tokens[0]!);
  const warmWatches = operations.slice(-10).map((id) => warm.subscribe<Update>(WATCH, { id }));
  await until([warm], () => warmWatches.every((w) => w.messages.length > 0), 30_000, 'warm-up');
  warm.close();
  await sleep(1000);
  const inspector = await Inspector.attach(a);
  defer(() => inspector.close());
  const baseline = await inspector.memoryAfterGc();
  if (process.env.PROFILE_HEAP) await inspector.startSampling();

  // Connection u subscribes to operations u·stride … u·stride + perConnection − 1 (mod their
  // count): each operation gets its subscribers from different users.
  const stride = Math.max(1, Math.ceil(args.operations / connectionsNeeded));
  const startedAt = Date.now();
  const connections = await inParallel(connectionsNeeded, 20, async (u) => {
    const connection = await LiveConnection.open(a.url, tokens[u]!);
    defer(() => connection.close());
    return connection;
  });
  const plan = connections.flatMap((connection, u) =>
    Array.from({ length: Math.min(perConnection, args.subscriptions - u * perConnection) }, (_, k) => ({
      connection,
      id: operations[(u * stride + k) % operations.length]!,
    })),
  );
  const all = await subscribeAll(connections, plan);
  const byOperation = new Map<string, Watch[]>();
  all.forEach((watch, i) => {
    const { id } = plan[i]!;
    byOperation.set(id, [...(byOperation.get(id) ?? []), watch]);
  });
  const subscribeSeconds = (Date.now() - startedAt) / 1000;
  const held = await inspector.memoryAfterGc();
  const sites = process.env.PROFILE_HEAP ? await inspector.liveBySite() : [];

  // Phase 2: W runs the progressing operations while A holds everything.
  const progressing = operations.slice(0, args.progressing).flatMap((id) => byOperation.get(id) ?? []);
  const cpuBefore = await inspector.cpuMicros();
  await spawn(setup.workerEnv);
  await until(
    connections,
    () => progressing.every((w) => w.done),
    args.steps * args['step-ms'] + 120_000,
    'the progressing operations to complete',
  );
  const underLoadCpu = (await inspector.cpuMicros()) - cpuBefore;
  const underLoad = operations
    .slice(0, args.progressing)
    .flatMap((id) => (byOperation.get(id) ?? []).flatMap((w) => deliveries(setup.tapped, id, w)));
  const stillHeld = all.filter((w) => !w.done).length;
  for (const connection of connections) connection.close();
  return {
    underLoadCpu,
    connections: connections.length,
    subscriptions: all.length,
    subscribeSeconds,
    baseline,
    held,
    underLoad,
    expected: await progressEvents(setup, byOperation, args.progressing),
    progressingSubscribers: progressing.length,
    stillHeld,
    errors: failures(progressing),
    sites,
    inspector,
  };
}

/** Phase 3: one operation, `fanout` subscribers on A and B, one subscription per connection. */
async function fanout(setup: Setup, inspector: Inspector) {
  const { a, b, tokens, fanoutOperation } = setup;
  const connections = await inParallel(args.fanout, 20, async (j) => {
    const connection = await LiveConnection.open(
      j % 2 === 0 ? a.url : b.url,
      tokens[Math.floor(j / 2) % tokens.length]!,
    );
    defer(() => connection.close());
    return connection;
  });
  const watches = await subscribeAll(
    connections,
    connections.map((connection) => ({ connection, id: fanoutOperation })),
  );
  // Events after the latest first message reach every subscriber live.
  const after = Math.max(...watches.map((w) => w.messages[0]!.data.operationUpdated.sequence));
  const upTo = after + args['fanout-events'];
  const cpuBefore = await inspector.cpuMicros();
  if (process.env.PROFILE_CPU) await inspector.startCpuProfile();
  await until(
    connections,
    () => watches.every((w) => w.done || (w.messages.at(-1)?.data.operationUpdated.sequence ?? 0) >= upTo),
    args['fanout-events'] * 250 + 120_000,
    `events up to sequence ${upTo} at every subscriber`,
  );
  const cpu = (await inspector.cpuMicros()) - cpuBefore;
  const profile = process.env.PROFILE_CPU ? await inspector.stopCpuProfile() : [];
  const cancelled = await gql(a.url, CancelOperation, { id: fanoutOperation }, setup.ownerToken);
  if (cancelled.data?.cancelOperation.__typename !== 'CancelOperationSuccess') {
    throw new Error(`cancel failed: ${JSON.stringify(cancelled).slice(0, 300)}`);
  }
  const samples = watches.flatMap((w) => deliveries(setup.tapped, fanoutOperation, w, after, upTo));
  // Per event: when its last subscriber had it.
  const lastPerEvent = new Map<number, number>();
  for (const sample of samples) {
    lastPerEvent.set(sample.sequence, Math.max(lastPerEvent.get(sample.sequence) ?? 0, sample.total));
  }
  for (const connection of connections) connection.close();
  // A's deliveries meanwhile: its half of the subscribers, every event (and the events in between).
  const onA = watches.filter((_, j) => j % 2 === 0);
  const deliveredOnA = onA.reduce(
    (sum, w) => sum + w.messages.filter((m) => m.data.operationUpdated.sequence > after).length,
    0,
  );
  return {
    cpu,
    profile,
    deliveredOnA,
    samples,
    lastPerEvent: [...lastPerEvent.values()],
    expected: watches.length * args['fanout-events'],
    errors: failures(watches),
  };
}

await runBench(async () => {
  console.log(
    `subscriptions: ${args.subscriptions} operationUpdated subscriptions on A (${args['per-connection']} per connection) ` +
      `over ${args.operations} operations, ${args.progressing} of them running ${args.steps} steps × ${args['step-ms']} ms; ` +
      `fan-out: 1 operation, ${args.fanout} subscribers (one per connection) on A and B; server limits at their defaults`,
  );
  const setup = await setUp();
  const held = await heldAndUnderLoad(setup);
  const inspector = held.inspector;
  const perSubscription = (key: 'heapUsed' | 'rss' | 'external') =>
    (held.held[key] - held.baseline[key]) / held.subscriptions;
  console.log(
    `\nHeld on A: ${held.subscriptions} subscriptions on ${held.connections} connections, all first messages in ${fixed(held.subscribeSeconds)} s` +
      ` (${fixed(held.subscriptions / held.subscribeSeconds, 0)}/s)`,
  );
  printTable(
    'Memory of A after a full GC (V8 inspector: HeapProfiler.collectGarbage, then process.memoryUsage())',
    ['', 'idle baseline MB', 'holding MB', 'per subscription KB', 'goal', 'met'],
    (['rss', 'heapUsed', 'external'] as const).map((key) => [
      key,
      mb(held.baseline[key]),
      mb(held.held[key]),
      kb(perSubscription(key)),
      key === 'rss' ? '≤ 20 KB' : '',
      key === 'rss' ? (perSubscription(key) <= 20 * 1024 ? 'yes' : 'NO') : '',
    ]),
  );

  if (held.sites.length > 0) {
    printTable(
      `PROFILE_HEAP: live bytes on A by allocation site (sampled) per subscription`,
      ['site ← caller ← caller', 'bytes'],
      held.sites.map(([site, bytes]) => [site.slice(0, 150), fixed(bytes / held.subscriptions, 0)]),
    );
  }

  // The fan-out runs last; a failure there (reported) leaves the figures above standing.
  const spread = await fanout(setup, inspector).catch((error: Error) => {
    console.log(`\nFan-out failed: ${error.message.slice(0, 600)}`);
    process.exitCode = 1;
    return {
      cpu: 0,
      profile: [] as [string, number][],
      deliveredOnA: 0,
      samples: [] as Sample[],
      lastPerEvent: [] as number[],
      expected: args.fanout * args['fanout-events'],
      errors: [],
    };
  });

  const row = (name: string, samples: number[], expected: number | null, goal: string, note: string) => {
    const p95 = percentile(samples, 95);
    return [
      name,
      expected === null ? '' : `${samples.length}/${expected}`,
      fixed(percentile(samples, 50)),
      fixed(p95),
      fixed(Math.max(...samples)),
      goal ? `≤ ${goal}` : '',
      goal ? (p95 <= Number(goal) ? 'yes' : 'NO') : '',
      note,
    ];
  };
  const split = (samples: Sample[]) => [
    row(
      '  → on Redis',
      samples.map((s) => s.toRedis),
      null,
      '',
      'W: commit, publish',
    ),
    row(
      '  → received',
      samples.map((s) => s.fromRedis),
      null,
      '',
      'API: fan-out, GraphQL, socket',
    ),
  ];
  printTable(
    "Delivery in ms (received here − the event's createdAt); indented rows split the row above",
    ['case', 'deliveries', 'p50', 'p95', 'max', 'goal p95', 'met', 'what'],
    [
      row(
        `1 event → ${args.fanout} subscribers on A+B`,
        spread.samples.map((s) => s.total),
        spread.expected,
        '100',
        `${args['fanout-events']} progress events, every subscriber`,
      ),
      ...split(spread.samples),
      row(
        '  last subscriber per event',
        spread.lastPerEvent,
        args['fanout-events'],
        '',
        'slowest of each event',
      ),
      row(
        `${args.progressing} ops progressing, ${held.subscriptions} held`,
        held.underLoad.map((s) => s.total),
        held.expected,
        '',
        `${held.progressingSubscribers} subscribers of the running operations`,
      ),
      ...split(held.underLoad),
    ],
  );
  // CPU time is what a loaded machine does not distort much (delivery times are waits for a core).
  const perDelivery = (micros: number, deliveries: number) =>
    deliveries > 0 ? fixed(micros / deliveries, 0) : '–';
  printTable(
    'CPU time of A (process.cpuUsage() through the inspector) while it delivered',
    ['phase', 'CPU ms', 'deliveries by A', 'CPU µs per delivery'],
    [
      [
        `1 event → ${args.fanout} subscribers (A's half), ${args['fanout-events']} events`,
        fixed(spread.cpu / 1000, 0),
        String(spread.deliveredOnA),
        perDelivery(spread.cpu, spread.deliveredOnA),
      ],
      [
        `${args.progressing} ops progressing, ${held.subscriptions} held (incl. W's start)`,
        fixed(held.underLoadCpu / 1000, 0),
        String(held.underLoad.length),
        perDelivery(held.underLoadCpu, held.underLoad.length),
      ],
    ],
  );
  if (spread.profile.length > 0) {
    printTable(
      'PROFILE_CPU: where A spent its CPU during the fan-out (self time, share of all samples)',
      ['function', 'share %'],
      spread.profile.map(([name, share]) => [name.slice(0, 150), fixed(share * 100, 1)]),
    );
  }
  const problems = [...held.errors, ...spread.errors];
  if (held.stillHeld !== held.subscriptions - held.progressingSubscribers) {
    problems.push(
      `${held.subscriptions - held.progressingSubscribers - held.stillHeld} idle subscriptions ended early`,
    );
  }
  if (held.underLoad.length !== held.expected || spread.samples.length !== spread.expected) {
    problems.push('some subscribers missed events (deliveries column)');
  }
  if (problems.length > 0) {
    process.exitCode = 1;
    console.log(`\nProblems: ${problems.slice(0, 5).join('; ')}`);
  }
});
