import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse, print } from 'graphql';
import pg from 'pg';
import { parseGlobalId } from '../src/graphql/ids.ts';
import { diagnosticsEcho } from '../src/operations/types/diagnostics-sleep.ts';
import { type ServerProcess, spawnServer, uniquePrefix } from '../test/support/app.ts';
import { gql, tokenFor } from '../test/support/client.ts';
import { StartTrivial } from '../test/support/documents.ts';
import { ADMIN_DATABASE_URL, REDIS_URL } from '../test/support/services.ts';
import { type ChainRun, chainBatch, printChain, runChain, statementCounter } from './batch-chain.ts';
import {
  BENCH_QUOTAS,
  cpuSeconds,
  createScratchDatabase,
  defer,
  fixed,
  inParallel,
  median,
  percentile,
  printTable,
  readArgs,
  runBench,
  type ScratchDatabase,
  waitForCount,
} from './support.ts';

/**
 * Batches (startBatch): how long a client waits for a batch to be accepted, and how long a batch of
 * trivial items takes to finish beside the same operations started one by one.
 *
 *   npm run bench:batch -- [--small-runs 30] [--large-runs 15] [--warmup 3]
 *                          [--n 1000] [--rounds 2] [--clients 16] [--stall 30]
 *
 * 1. Submission: the HTTP round trip of startBatch with 100 and with 1,000 items (`--small-runs`
 *    and `--large-runs` runs, interleaved, after `--warmup` untimed runs of each), and of the same
 *    batches with validateOnly (validation and planning alone; nothing is written). Every batch is
 *    realistic in shape, in groups of ten `diagnostics.echo` items: five independent, a chain of
 *    three (whole-value and interpolated `$ref:`s), a fan-in of three into one, and one item joining
 *    the chain and the fan-in (dependsOn + `$ref:` to an array); atomic (echo has a compensation
 *    step). The server for this phase runs OPSGRAPH_ROLE=api on its own scratch database, so the
 *    batches it accepts are never run (their coordinator jobs wait in pg-boss): no completion work
 *    competes with the submissions for the 2 cores. Each submission writes its rows, so the tables
 *    grow by ~21,000 operations over the phase, as they would in service.
 * 2. Completion: a batch of `--n` independent trivial items (diagnostics.echo without sleep,
 *    atomic: false), mutation sent → the batch operation COMPLETED; beside `--n` startOperation
 *    calls of the same type from `--clients` concurrent HTTP clients (as bench:throughput), first
 *    request → last of them COMPLETED. The two alternate for `--rounds` rounds, each run on a fresh
 *    database with its own server process (OPSGRAPH_ROLE=all, default worker settings) after an
 *    untimed warm-up of both kinds. Completion is watched by polling PostgreSQL (every 20 ms, from
 *    this process) and times come from the database's timestamps, as bench:throughput does. A run
 *    whose progress (items completed) stops for `--stall` seconds is reported as stalled.
 * 3. Chain: statements per item of a chain of `--chain` dependent items beside one of
 *    `--chain-small` (bench/batch-chain.ts), on a server whose statements are counted, after an idle
 *    stretch of `--chain-idle` ms that measures its background statements.
 *
 * `--phases submission|completion|chain` runs one phase only (default all).
 */

const args = readArgs(
  {
    'small-runs': { default: 30, min: 1 },
    'large-runs': { default: 15, min: 1 },
    warmup: { default: 3, min: 0 },
    n: { default: 1000, min: 1 },
    rounds: { default: 2, min: 1 },
    clients: { default: 16, min: 1 },
    stall: { default: 30, min: 1 },
    chain: { default: 200, min: 2 },
    'chain-small': { default: 50, min: 2 },
    'chain-idle': { default: 3000, min: 0 },
  },
  { phases: ['all', 'submission', 'completion', 'chain'] },
);
const inPhase = (name: string) => args.phases === 'all' || args.phases === name;

const SMALL = 100;
const LARGE = 1000;
/** Targets of the submission round trip, in ms: p95 for 100 items, every run for 1,000. */
const TARGET = { [SMALL]: 100, [LARGE]: 1000 } as Record<number, number>;
const ECHO = diagnosticsEcho.name;
const TERMINAL = `('COMPLETED', 'FAILED', 'CANCELLED')`;

// ---------------------------------------------------------------- GraphQL

interface BatchItem {
  id: string;
  type: string;
  input?: unknown;
  dependsOn?: string[];
}
interface BatchInput {
  items: BatchItem[];
  atomic?: boolean;
  continueOnError?: boolean;
  validateOnly?: boolean;
  idempotencyKey?: string;
}
interface StartBatchData {
  startBatch:
    | {
        __typename: 'StartBatchSuccess';
        batch: { id: string; status: string } | null;
        plan: { itemCount: number };
      }
    | { __typename: 'ValidationError'; message: string; problems: { path: string[]; message: string }[] }
    | { __typename: 'IdempotencyKeyConflictError'; message: string };
}
const StartBatch = parse(`
  mutation BenchStartBatch($input: StartBatchInput!) {
    startBatch(input: $input) {
      __typename
      ... on StartBatchSuccess { batch { id status } plan { itemCount } }
      ... on ValidationError { message problems { path message } }
      ... on IdempotencyKeyConflictError { message }
    }
  }
`) as TypedDocumentNode<StartBatchData, { input: BatchInput }>;

interface Server {
  app: ServerProcess;
  token: string;
}

/** Sends startBatch and checks that it was accepted with every item; returns the batch's id (or null). */
async function startBatch(server: Server, input: BatchInput): Promise<string | null> {
  const response = await gql(server.app.url, StartBatch, { input }, server.token);
  const result = response.data?.startBatch;
  if (result?.__typename !== 'StartBatchSuccess' || result.plan.itemCount !== input.items.length) {
    throw new Error(`startBatch refused: ${JSON.stringify(response).slice(0, 2000)}`);
  }
  if (!input.validateOnly && !result.batch) throw new Error('startBatch returned no batch');
  return result.batch ? parseGlobalId(result.batch.id, 'Operation') : null;
}

async function startOne(server: Server, value: number): Promise<void> {
  const variables = { input: { type: ECHO, input: { value } } };
  const response = await gql(server.app.url, StartTrivial, variables, server.token);
  if (response.data?.startOperation.__typename !== 'StartOperationSuccess') {
    throw new Error(`startOperation failed: ${JSON.stringify(response)}`);
  }
}

// ---------------------------------------------------------------- batch shapes

/**
 * A realistic batch of `size` echo items, in groups of ten (ids `g<group>x<k>`, letters and
 * digits only so that they can be interpolated): x0–x4 independent; x5 → x6 → x7 a chain
 * (x6 takes x5's whole value, x7 interpolates a field of x6's); x8 a fan-in of x0, x1, x2; x9 joins
 * x7 and x8. A last partial group keeps its first items.
 */
function mixedBatch(size: number, run: string): BatchItem[] {
  const items: BatchItem[] = [];
  for (let group = 0; items.length < size; group += 1) {
    const id = (k: number) => `g${group}x${k}`;
    const shape: BatchItem[] = [
      ...[0, 1, 2, 3, 4].map((k) => ({
        id: id(k),
        type: ECHO,
        input: { value: { n: group * 10 + k, run, tag: `item-${k}` } },
      })),
      { id: id(5), type: ECHO, input: { value: { n: group * 10 + 5, run, tag: 'chain' } } },
      { id: id(6), type: ECHO, input: { value: `$ref:${id(5)}.value` }, dependsOn: [id(5)] },
      {
        id: id(7),
        type: ECHO,
        input: { value: `chain-$ref:${id(6)}.value.n-of-$ref:${id(6)}.value.run` },
        dependsOn: [id(6)],
      },
      {
        id: id(8),
        type: ECHO,
        input: { value: [`$ref:${id(0)}.value.n`, `$ref:${id(1)}.value`, `$ref:${id(2)}.value.tag`] },
        dependsOn: [id(0), id(1), id(2)],
      },
      {
        id: id(9),
        type: ECHO,
        input: { value: { parts: `$ref:${id(8)}.value`, chain: `$ref:${id(7)}.value` } },
        dependsOn: [id(7), id(8)],
      },
    ];
    items.push(...shape.slice(0, size - items.length));
  }
  return items;
}

/** `size` independent trivial items (the completion benchmark). */
const independentBatch = (size: number): BatchItem[] =>
  Array.from({ length: size }, (_, i) => ({ id: `i${i}`, type: ECHO, input: { value: i } }));

/** What gql() sends for a startBatch request, in bytes. */
const requestBytes = (input: BatchInput) =>
  Buffer.byteLength(JSON.stringify({ query: print(StartBatch), variables: { input } }));

// ---------------------------------------------------------------- processes and CPU

/** The machine's busy and total CPU ticks so far (all cores), from /proc/stat. */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = ticks.reduce((a, b) => a + b, 0);
    return { busy: total - ticks[3]! - ticks[4]!, total }; // minus idle and iowait
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

/** CPU used by the server process and the whole machine between start() and the returned stop(). */
interface Counts {
  statements: number;
  redisWrites?: number;
}

async function cpuMeter(pid: number | undefined, counts: () => Promise<Counts>) {
  const before = await counts();
  const server = await cpuSeconds(pid);
  const machine = await machineTicks();
  return async () => {
    const after = await machineTicks();
    const serverCpu = (await cpuSeconds(pid)) - server;
    return {
      serverCpu,
      machineBusy: (after.busy - machine.busy) / (after.total - machine.total),
      ...(await counts().then((after) => ({
        statements: after.statements - before.statements,
        redisWrites: (after.redisWrites ?? 0) - (before.redisWrites ?? 0),
      }))),
    };
  };
}

async function withServer<T>(
  label: string,
  role: 'api' | 'all',
  body: (server: Server, db: ScratchDatabase) => Promise<T>,
  env: Record<string, string> = {},
): Promise<T> {
  const db = await createScratchDatabase(label, { migrate: true });
  try {
    const app = await spawnServer({
      DATABASE_URL: db.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      OPSGRAPH_ROLE: role,
      OPSGRAPH_SHUTDOWN_GRACE_MS: '2000',
      ...BENCH_QUOTAS,
      ...env,
      // e.g. BENCH_SERVER_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the servers.
      ...(process.env.BENCH_SERVER_NODE_OPTIONS
        ? { NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} ${process.env.BENCH_SERVER_NODE_OPTIONS}`.trim() }
        : {}),
    });
    const close = defer(async () => {
      await app.stop();
    });
    try {
      return await body({ app, token: await tokenFor(db.url, 'bench') }, db);
    } finally {
      await close();
    }
  } finally {
    await db.drop();
  }
}

// ---------------------------------------------------------------- 1. submission

interface Submission {
  size: number;
  mode: 'startBatch' | 'validateOnly';
  ms: number;
  bytes: number;
}

async function submissionPhase(): Promise<{ samples: Submission[]; rows: number }> {
  return withServer('batch_submit', 'api', async (server, db) => {
    const samples: Submission[] = [];
    let expectedRows = 0;
    const once = async (size: number, run: string, validateFirst: boolean, timed: boolean) => {
      const items = mixedBatch(size, run);
      const modes = validateFirst
        ? (['validateOnly', 'startBatch'] as const)
        : (['startBatch', 'validateOnly'] as const);
      for (const mode of modes) {
        const input: BatchInput = { items, atomic: true, validateOnly: mode === 'validateOnly' };
        const t = performance.now();
        await startBatch(server, input);
        const ms = performance.now() - t;
        if (mode === 'startBatch') expectedRows += size + 1;
        if (timed) samples.push({ size, mode, ms, bytes: requestBytes(input) });
      }
    };
    for (let i = 0; i < args.warmup; i += 1) {
      await once(SMALL, `warmup-${i}`, i % 2 === 0, false);
      await once(LARGE, `warmup-${i}`, i % 2 === 0, false);
    }
    const runs = Math.max(args['small-runs'], args['large-runs']);
    for (let i = 0; i < runs; i += 1) {
      // Interleaved sizes; validateOnly first in even runs, second in odd ones.
      if (i < args['small-runs']) await once(SMALL, `run-${i}`, i % 2 === 0, true);
      if (i < args['large-runs']) await once(LARGE, `run-${i}`, i % 2 === 0, true);
    }
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "Operation"');
    if (rows[0]?.n !== expectedRows) {
      throw new Error(`expected ${expectedRows} operations after the submissions, found ${rows[0]?.n}`);
    }
    return { samples, rows: expectedRows };
  });
}

// ---------------------------------------------------------------- 2. completion

interface Completion {
  system: 'startBatch' | 'one by one';
  round: number;
  completed: number;
  stalled: boolean;
  /** Mutation sent (first request) → batch COMPLETED (last operation COMPLETED), ms. */
  totalMs: number;
  /** startBatch round trip, or first request → last request answered, ms. */
  requestMs: number;
  /** Sent → first item (operation) started, and → last one completed, ms. */
  firstStartMs: number;
  lastCompletedMs: number;
  /** startBatch only: sent → the coordinator claimed the batch; → first and last item released. */
  coordinatorMs?: number;
  firstReleaseMs?: number;
  lastReleaseMs?: number;
  /** startBatch only: events of the batch operation (ITEM, PROGRESS…). */
  batchEvents?: number;
  /** startBatch only: its ITEM events (item status changes), and sent → the first and last of them. */
  itemEvents?: number;
  firstItemEventMs?: number;
  lastItemEventMs?: number;
  serverCpu: number;
  machineBusy: number;
  /** Statements the server sent and its socket writes to Redis (bench/count-statements.mjs), mutation sent → done. */
  statements: number;
  redisWrites: number;
}

const since = (at: Date | null | undefined, start: Date) =>
  at ? at.getTime() - start.getTime() : Number.NaN;

/** Untimed: a small batch and a few single operations, run to the end (code paths, connections). */
async function warmUp(server: Server, db: ScratchDatabase): Promise<void> {
  const id = await startBatch(server, { items: independentBatch(20), atomic: false });
  await inParallel(50, args.clients, (i) => startOne(server, i));
  await waitForCount(
    db.pool,
    `SELECT count(*)::int AS n FROM "Operation" WHERE status = 'COMPLETED'`,
    [],
    20 + 1 + 50,
    { stallMs: args.stall * 1000 },
  );
  const { rows } = await db.pool.query<{ status: string }>(`SELECT status FROM "Operation" WHERE id = $1`, [
    id,
  ]);
  if (rows[0]?.status !== 'COMPLETED') throw new Error(`warm-up batch ended ${rows[0]?.status}`);
}

async function runBatch(round: number): Promise<Completion> {
  const counter = statementCounter();
  return withServer(
    'batch_batch',
    'all',
    async (server, db) => {
      await warmUp(server, db);
      const meter = await cpuMeter(server.app.child.pid, counter.read);
      const sentAt = new Date();
      const t = performance.now();
      const id = (await startBatch(server, { items: independentBatch(args.n), atomic: false }))!;
      const requestMs = performance.now() - t;
      // Progress = items completed, plus one once the batch has ended.
      const done = await waitForCount(
        db.pool,
        `SELECT (SELECT count(*) FROM "Operation" WHERE "batchId" = $1 AND status = 'COMPLETED')::int
            + (SELECT count(*) FROM "Operation" WHERE id = $1 AND status IN ${TERMINAL})::int AS n`,
        [id],
        args.n + 1,
        { stallMs: args.stall * 1000, timeoutMs: 3_600_000 },
      );
      const cpu = await meter();
      const { rows } = await db.pool.query<{
        status: string;
        started: Date | null;
        ended: Date | null;
        completed: number;
        first_start: Date | null;
        last_completion: Date | null;
        first_release: Date | null;
        last_release: Date | null;
        events: number;
        item_events: number;
        first_item_event: Date | null;
        last_item_event: Date | null;
      }>(
        `SELECT b.status::text, b."startedAt" AS started, b."completedAt" AS ended,
              (SELECT count(*)::int FROM "Operation" WHERE "batchId" = b.id AND status = 'COMPLETED') AS completed,
              (SELECT min("startedAt") FROM "Operation" WHERE "batchId" = b.id) AS first_start,
              (SELECT max("completedAt") FROM "Operation" WHERE "batchId" = b.id) AS last_completion,
              (SELECT min(e."createdAt") FROM "OperationEvent" e JOIN "Operation" o ON o.id = e."operationId"
                WHERE o."batchId" = b.id AND e.kind = 'READY') AS first_release,
              (SELECT max(e."createdAt") FROM "OperationEvent" e JOIN "Operation" o ON o.id = e."operationId"
                WHERE o."batchId" = b.id AND e.kind = 'READY') AS last_release,
              (SELECT count(*)::int FROM "OperationEvent" WHERE "operationId" = b.id) AS events,
              i.n AS item_events, i.first AS first_item_event, i.last AS last_item_event
         FROM "Operation" b,
              LATERAL (SELECT count(*)::int AS n, min("createdAt") AS first, max("createdAt") AS last
                         FROM "OperationEvent" WHERE "operationId" = b.id AND kind = 'ITEM') i
        WHERE b.id = $1`,
        [id],
      );
      const row = rows[0]!;
      if (!done.stalled && row.status !== 'COMPLETED') throw new Error(`the batch ended ${row.status}`);
      return {
        system: 'startBatch',
        round,
        completed: row.completed,
        stalled: done.stalled,
        totalMs: done.stalled ? since(row.last_completion, sentAt) : since(row.ended, sentAt),
        requestMs,
        firstStartMs: since(row.first_start, sentAt),
        lastCompletedMs: since(row.last_completion, sentAt),
        coordinatorMs: since(row.started, sentAt),
        firstReleaseMs: since(row.first_release, sentAt),
        lastReleaseMs: since(row.last_release, sentAt),
        batchEvents: row.events,
        itemEvents: row.item_events,
        firstItemEventMs: since(row.first_item_event, sentAt),
        lastItemEventMs: since(row.last_item_event, sentAt),
        ...cpu,
      };
    },
    counter.env,
  );
}

async function runOneByOne(round: number): Promise<Completion> {
  const counter = statementCounter();
  return withServer(
    'batch_single',
    'all',
    async (server, db) => {
      await warmUp(server, db);
      const meter = await cpuMeter(server.app.child.pid, counter.read);
      const sentAt = new Date();
      await inParallel(args.n, args.clients, (i) => startOne(server, i));
      const requestMs = Date.now() - sentAt.getTime();
      const where = `"createdAt" >= $1 AND "batchId" IS NULL AND type = '${ECHO}'`;
      const done = await waitForCount(
        db.pool,
        `SELECT count(*)::int AS n FROM "Operation" WHERE ${where} AND status = 'COMPLETED'`,
        [sentAt],
        args.n,
        { stallMs: args.stall * 1000, timeoutMs: 3_600_000 },
      );
      const cpu = await meter();
      const { rows } = await db.pool.query<{
        completed: number;
        first_start: Date | null;
        last_completion: Date | null;
      }>(
        `SELECT count(*) FILTER (WHERE status = 'COMPLETED')::int AS completed,
              min("startedAt") AS first_start, max("completedAt") AS last_completion
         FROM "Operation" WHERE ${where}`,
        [sentAt],
      );
      const row = rows[0]!;
      const lastCompletedMs = since(row.last_completion, sentAt);
      return {
        system: 'one by one',
        round,
        completed: row.completed,
        stalled: done.stalled,
        totalMs: Math.max(requestMs, lastCompletedMs),
        requestMs,
        firstStartMs: since(row.first_start, sentAt),
        lastCompletedMs,
        ...cpu,
      };
    },
    counter.env,
  );
}

// ---------------------------------------------------------------- report

const opsPerSecond = (run: Completion) => (run.completed / run.totalMs) * 1000;
const ms = (value: number | undefined) => fixed(value ?? Number.NaN, 0);
const seconds = (value: number | undefined) => fixed((value ?? Number.NaN) / 1000, 2);

await runBench(async () => {
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  const { rows: version } = await admin.query<{ server_version: string }>('SHOW server_version');
  await admin.end();
  console.log(
    `batch: node ${process.version}, PostgreSQL ${version[0]?.server_version}, ${availableParallelism()} cores; ` +
      `items are ${ECHO}; default worker settings (8 slots per type)`,
  );

  if (inPhase('submission')) {
    // ------------------------------------------------------------ 1. submission
    console.log(
      `\n1. submission: startBatch round trips, ${args['small-runs']} runs of ${SMALL} items and ` +
        `${args['large-runs']} of ${LARGE} (interleaved, each also sent with validateOnly), atomic, ` +
        `mixed shapes (per 10 items: 5 independent, a chain of 3, a fan-in of 3 → 1, 1 join; 4 with $ref:); ` +
        `after ${args.warmup} untimed run(s) of each; server OPSGRAPH_ROLE=api (accepted batches are not run)`,
    );
    const submission = await submissionPhase();
    const groups = [SMALL, LARGE].flatMap((size) =>
      (['startBatch', 'validateOnly'] as const).map((mode) => ({
        size,
        mode,
        samples: submission.samples.filter((s) => s.size === size && s.mode === mode),
      })),
    );
    printTable(
      `Submission round trip (HTTP, ms; nearest-rank percentiles; validateOnly = validation and plan only, ` +
        `nothing written; ${submission.rows} operations stored by the end)`,
      ['items', 'mutation', 'runs', 'request KB', 'p50', 'p95', 'max', 'target', 'met'],
      groups.map(({ size, mode, samples }) => {
        const times = samples.map((s) => s.ms);
        const p95 = percentile(times, 95);
        const target = mode === 'startBatch' ? TARGET[size] : undefined;
        const check = size === SMALL ? p95 : Math.max(...times);
        return [
          String(size),
          mode,
          String(samples.length),
          fixed(median(samples.map((s) => s.bytes)) / 1024, 1),
          fixed(percentile(times, 50), 1),
          fixed(p95, 1),
          fixed(Math.max(...times), 1),
          target === undefined ? '' : size === SMALL ? `p95 ≤ ${target}` : `all ≤ ${target}`,
          target === undefined ? '' : check <= target ? 'yes' : 'NO',
        ];
      }),
    );
    for (const size of [SMALL, LARGE]) {
      const of = (mode: Submission['mode']) =>
        median(submission.samples.filter((s) => s.size === size && s.mode === mode).map((s) => s.ms));
      const write = of('startBatch') - of('validateOnly');
      console.log(
        `  ${size} items: median startBatch − median validateOnly = ${fixed(write, 1)} ms ` +
          `(creating the ${size + 1} operations, their events and the coordinator's job)`,
      );
    }
  }
  if (inPhase('completion')) {
    // ------------------------------------------------------------ 2. completion
    console.log(
      `\n2. completion: ${args.n} trivial items (${ECHO} {value}), one startBatch (atomic: false) beside ` +
        `${args.n} startOperation calls from ${args.clients} concurrent clients; ${args.rounds} round(s) ` +
        `alternating, each run on a fresh database and server process (OPSGRAPH_ROLE=all) after a warm-up`,
    );
    const runs: Completion[] = [];
    for (let round = 1; round <= args.rounds; round += 1) {
      // Alternate which goes first, so neither always runs on a machine the other just warmed.
      const order = round % 2 === 1 ? [runBatch, runOneByOne] : [runOneByOne, runBatch];
      for (const run of order) {
        const result = await run(round);
        runs.push(result);
        console.log(
          `  round ${round} ${result.system.padEnd(10)} ${fixed(opsPerSecond(result), 0).padStart(5)} ops/s, ` +
            `${result.completed}/${args.n} completed in ${seconds(result.totalMs)} s` +
            (result.stalled ? ` (STALLED for ${args.stall} s)` : ''),
        );
      }
    }

    printTable(
      'Runs (s from the first request; total = until the batch operation (startBatch) or the last ' +
        'operation (one by one) was COMPLETED; request = startBatch round trip, or until the last ' +
        'startOperation was answered; CPU = the server process; busy = the whole machine, 1.0 = all cores)',
      [
        'round',
        'system',
        'done',
        'ops/s',
        'total s',
        'request s',
        'first start s',
        'last done s',
        'server CPU s',
        'CPU ms/op',
        'statements/op',
        'Redis writes/op',
        'busy',
      ],
      runs.map((run) => [
        String(run.round),
        run.system,
        `${run.completed}/${args.n}${run.stalled ? ' STALLED' : ''}`,
        fixed(opsPerSecond(run), 0),
        seconds(run.totalMs),
        seconds(run.requestMs),
        seconds(run.firstStartMs),
        seconds(run.lastCompletedMs),
        fixed(run.serverCpu, 1),
        fixed((run.serverCpu * 1000) / run.completed, 2),
        fixed(run.statements / run.completed, 2),
        fixed(run.redisWrites / run.completed, 2),
        fixed(run.machineBusy, 2),
      ]),
    );
    const batches = runs.filter((run) => run.system === 'startBatch');
    printTable(
      "Where a batch's time goes (ms from the mutation sent; database timestamps): coordinator = the batch " +
        "job claimed; released = items' READY events (the coordinator starting items, 100 per " +
        "transaction); per item = (last − first released) / (n − 1); ITEM = the batch's item " +
        'status events (up to 500 per statement); tail = last item COMPLETED → batch COMPLETED',
      [
        'round',
        'request',
        'coordinator',
        'first released',
        'last released',
        'per item',
        'last item done',
        'ITEM/all events',
        'first ITEM',
        'last ITEM',
        'batch done',
        'tail',
      ],
      batches.map((run) => [
        String(run.round),
        ms(run.requestMs),
        ms(run.coordinatorMs),
        ms(run.firstReleaseMs),
        ms(run.lastReleaseMs),
        fixed((run.lastReleaseMs! - run.firstReleaseMs!) / Math.max(1, args.n - 1), 1),
        ms(run.lastCompletedMs),
        `${run.itemEvents}/${run.batchEvents}`,
        ms(run.firstItemEventMs),
        ms(run.lastItemEventMs),
        ms(run.totalMs),
        ms(run.totalMs - run.lastCompletedMs),
      ]),
    );

    const ones = runs.filter((run) => run.system === 'one by one');
    const batchS = median(batches.map((run) => run.totalMs)) / 1000;
    const oneS = median(ones.map((run) => run.totalMs)) / 1000;
    printTable(
      `Summary: completion of ${args.n} trivial operations (median of ${args.rounds} run(s) each)`,
      ['system', 'total s', 'ops/s', 'server CPU s', 'time ratio'],
      [
        [
          'startBatch (one request)',
          fixed(batchS, 2),
          fixed(median(batches.map(opsPerSecond)), 0),
          fixed(median(batches.map((run) => run.serverCpu)), 1),
          fixed(batchS / oneS, 2),
        ],
        [
          `one by one (${args.clients} clients)`,
          fixed(oneS, 2),
          fixed(median(ones.map(opsPerSecond)), 0),
          fixed(median(ones.map((run) => run.serverCpu)), 1),
          '1.00',
        ],
      ],
    );
    console.log(
      `\nbatch / one by one = ${fixed(batchS / oneS, 2)} × the time (goal ≤ 0.25)` +
        (batchS > oneS ? ' (the batch is slower)' : ' (the batch is faster)'),
    );
    for (const run of runs.filter((r) => r.stalled)) {
      console.log(
        `  ${run.system} round ${run.round} stalled: ${run.completed}/${args.n} completed, no progress for ${args.stall} s`,
      );
    }
  }
  if (inPhase('chain')) {
    // ------------------------------------------------------------ 3. chain
    console.log(
      `\n3. chain: statements per item of a chain of ${args.chain} dependent ${ECHO} items ($ref: to the ` +
        `previous one, atomic: false) beside one of ${args['chain-small']}; one server (OPSGRAPH_ROLE=all) ` +
        `whose statements are counted`,
    );
    const counter = statementCounter();
    const chainRuns = await withServer(
      'batch_chain',
      'all',
      async (server, db) => {
        const submit = async (n: number) =>
          (await startBatch(server, { items: chainBatch(n, ECHO), atomic: false })) as string;
        await runChain(db, counter.read, submit, 5, 0); // warm-up
        const out: ChainRun[] = [];
        for (const n of [args['chain-small'], args.chain]) {
          out.push(await runChain(db, counter.read, submit, n, args['chain-idle']));
        }
        return out;
      },
      counter.env,
    );
    printChain(chainRuns);
    const [small, large] = chainRuns.map((run) => run.statements / run.items);
    console.log(
      `\nchain: ${fixed(large ?? Number.NaN, 1)} statements per item at ${args.chain} items ` +
        `(${fixed(small ?? Number.NaN, 1)} at ${args['chain-small']}: ratio ${fixed((large ?? 0) / (small ?? 1), 2)}, ` +
        `1.00 = constant per item)`,
    );
  }
});
