import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { print } from 'graphql';
import pg from 'pg';
import { type Job, PgBoss } from 'pg-boss';
import type { Config } from '../src/config.ts';
import { jobOptions } from '../src/operations/queues.ts';
import { diagnosticsSleep } from '../src/operations/types/diagnostics-sleep.ts';
import {
  type ServerProcess,
  spawnServer,
  startTestApp,
  testConfig,
  uniquePrefix,
} from '../test/support/app.ts';
import { gql, tokenFor } from '../test/support/client.ts';
import { StartTrivial } from '../test/support/documents.ts';
import { REDIS_URL } from '../test/support/services.ts';
import {
  BENCH_QUOTAS,
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
 * End-to-end throughput of trivial operations (SPEC §5): opsgraph (GraphQL startOperation over
 * HTTP → row + pg-boss job in one transaction → worker → COMPLETED) against raw pg-boss doing the
 * same work (send → work → completed) with the same client concurrency and worker settings,
 * alternating A B A B in one run on the same PostgreSQL server, each run on a fresh database.
 *
 *   npm run bench:throughput -- --n 2000 [--clients 16] [--rounds 2] [--warmup 50] [--stall 5]
 *                                        [--raw refetch|plain] [--drain 2000]
 *
 * `--n 0` skips this part. `--raw refetch` (default): the raw workers fetch again as soon as a job is done (each worker
 * wakes itself with `notifyWorker`). `--raw plain`: pg-boss' own loop, which after every job
 * sleeps `notifyPollingIntervalSeconds` (30 s) unless a NOTIFY arrived meanwhile, so a backlog
 * left when the senders stop drains at one job per worker per 30 s (opsgraph's runner, as of this
 * writing, behaves like `plain`). A run whose completions stop growing for `--stall` seconds is
 * reported as stalled, with what had completed until then.
 *
 * Then the worker side alone (`--drain` operations, 0 to skip): a backlog queued while no worker
 * runs (opsgraph: started through an API-only instance, which is then closed; raw pg-boss: sent
 * with no worker registered), then drained by a worker-only opsgraph instance / the raw workers,
 * both in this process: rate = backlog / (first job started → last completed), database clock,
 * and this process's CPU per job over the drain. This is
 * what a batch of independent items or any burst asks of the workers, without the HTTP and
 * GraphQL cost of each start.
 */

const args = readArgs(
  {
    n: { default: 2000, min: 0 },
    clients: { default: 16, min: 1 },
    rounds: { default: 2, min: 1 },
    warmup: { default: 50, min: 0 },
    stall: { default: 5, min: 1 },
    drain: { default: 2000, min: 0 },
  },
  { raw: ['refetch', 'plain'] },
);

/** The trivial operation both systems run. */
const INPUT = { steps: 0, stepMs: 0 };

/** The worker settings opsgraph uses (defaults of its config), given to raw pg-boss too. */
const reference: Config = testConfig('postgresql://unused@127.0.0.1/unused');

interface Run {
  system: 'opsgraph' | 'pg-boss';
  round: number;
  /** Operations completed (N unless stalled). */
  completed: number;
  stalled: boolean;
  /** First request → last completion (database clock, same machine), in ms. */
  totalMs: number;
  /** First request → last request answered, in ms. */
  sendMs: number;
  /** Client-side request latency (HTTP round trip or send()), in ms. */
  requestMs: number[];
  /** Per operation: created → started and started → completed, from the database, in ms. */
  waitMs: number[];
  runMs: number[];
}

/**
 * SQL over what one system stores, each taking `values` and then the time the measured requests
 * began (so warm-up stragglers never count): the count of completed (`n`), and per-job timestamps.
 */
interface Probe {
  completed: string;
  timings: string;
  values: unknown[];
}

interface TimingRow {
  created: Date;
  started: Date;
  completed: Date;
}

/**
 * spawnServer, tried up to three times: on a loaded machine a server process sometimes needs more
 * than the 30 s spawnServer allows to load its code, which says nothing about its throughput.
 */
async function spawn(env: Record<string, string>): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await spawnServer(env);
    } catch (error) {
      if (attempt === 3) throw error;
      console.log(
        `  (server start attempt ${attempt} failed: ${(error as Error).message.split('\n')[0]}; again)`,
      );
    }
  }
}

/** The raw pg-boss queue. */
const RAW_QUEUE = 'bench-trivial';

const OPSGRAPH_PROBE: Probe = {
  completed: `SELECT count(*)::int AS n FROM "Operation" WHERE "createdAt" >= $1 AND status = 'COMPLETED'`,
  timings: `SELECT "createdAt" AS created, "startedAt" AS started, "completedAt" AS completed
              FROM "Operation" WHERE "createdAt" >= $1 AND status = 'COMPLETED'`,
  values: [],
};

const RAW_PROBE: Probe = {
  completed: `SELECT count(*)::int AS n FROM pgboss.job
                WHERE name = $1 AND created_on >= $2 AND state = 'completed'`,
  timings: `SELECT created_on AS created, started_on AS started, completed_on AS completed
              FROM pgboss.job WHERE name = $1 AND created_on >= $2 AND state = 'completed'`,
  values: [RAW_QUEUE],
};

/** Warm-up, then N requests with bounded concurrency, then waits for N completions. */
async function measure(
  db: ScratchDatabase,
  request: () => Promise<void>,
  probe: Probe,
): Promise<Omit<Run, 'system' | 'round'>> {
  const stallMs = args.stall * 1000;
  await inParallel(args.warmup, args.clients, request);
  await waitForCount(db.pool, probe.completed, [...probe.values, new Date(0)], args.warmup, { stallMs });

  const startedAt = new Date();
  const requestMs = await inParallel(args.n, args.clients, async () => {
    const t = performance.now();
    await request();
    return performance.now() - t;
  });
  const sendMs = Date.now() - startedAt.getTime();
  const done = await waitForCount(db.pool, probe.completed, [...probe.values, startedAt], args.n, {
    stallMs,
  });
  const { rows } = await db.pool.query<TimingRow>(probe.timings, [...probe.values, startedAt]);
  const finished = rows.filter((row) => row.completed !== null);
  const last = Math.max(...finished.map((row) => row.completed.getTime()));
  return {
    completed: finished.length,
    stalled: done.stalled,
    totalMs: Math.max(sendMs, last - startedAt.getTime()),
    sendMs,
    requestMs,
    waitMs: finished.map((row) => row.started.getTime() - row.created.getTime()),
    runMs: finished.map((row) => row.completed.getTime() - row.started.getTime()),
  };
}

/**
 * The measured clients' startOperation: the request `gql` (test/support/client.ts) sends — same
 * method, headers, body and token, over kept-alive connections as fetch keeps them — sent with
 * node:http (one socket per client) and the query printed once. fetch cost this process ~0.25 ms
 * of CPU per request against ~0.1 ms for node:http (16 clients, measured side by side), on the 2
 * cores the server, its worker and PostgreSQL use too; raw pg-boss's `send` pays no such client.
 * The server sees the same requests: its work per start is what is measured.
 */
function startClient(url: string, token: string, variables: unknown): () => Promise<void> {
  const body = JSON.stringify({ query: print(StartTrivial), variables });
  const agent = new Agent({ keepAlive: true, maxSockets: args.clients });
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json',
    authorization: `Bearer ${token}`,
    'content-length': String(Buffer.byteLength(body)),
  };
  return () =>
    new Promise<void>((resolve, reject) => {
      const sent = request(url, { method: 'POST', headers, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('error', reject);
        res.on('end', () => {
          const response = JSON.parse(text) as { data?: { startOperation?: { __typename?: string } } };
          if (response.data?.startOperation?.__typename === 'StartOperationSuccess') resolve();
          else reject(new Error(`startOperation failed (HTTP ${res.statusCode}): ${text}`));
        });
      });
      sent.on('error', reject);
      sent.end(body);
    });
}

async function runOpsgraph(round: number): Promise<Run> {
  const db = await createScratchDatabase('tp_opsgraph', { migrate: true });
  try {
    // The server runs as its own process, as deployed; this process only sends requests.
    const app = await spawn({
      DATABASE_URL: db.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      OPSGRAPH_ROLE: 'all',
      ...BENCH_QUOTAS,
    });
    const close = defer(async () => {
      await app.stop();
    });
    try {
      const token = await tokenFor(db.url, 'bench');
      const variables = { input: { type: diagnosticsSleep.name, input: INPUT } };
      const result = await measure(db, startClient(app.url, token, variables), OPSGRAPH_PROBE);
      return { system: 'opsgraph', round, ...result };
    } finally {
      await close();
    }
  } finally {
    await db.drop();
  }
}

/**
 * Raw pg-boss as opsgraph's startBoss runs it (LISTEN/NOTIFY on, a pool of 10), with the queue and
 * job options opsgraph uses for diagnostics.sleep; `send` queues one job as both raw phases do.
 */
async function startRawBoss(url: string) {
  const boss = new PgBoss({ connectionString: url, useListenNotify: true, max: 10 });
  boss.on('error', (error: Error) => console.error(`pg-boss error: ${error.message}`));
  await boss.start();
  const stop = defer(() => boss.stop({ graceful: false, timeout: 5000 }));
  const options = jobOptions(diagnosticsSleep.policy);
  try {
    await boss.createQueue(RAW_QUEUE, { notify: true, ...options });
  } catch (error) {
    await stop();
    throw error;
  }
  const send = async () => {
    await boss.send(RAW_QUEUE, { operationId: randomUUID() }, { id: randomUUID(), ...options });
  };
  return { boss, stop, send };
}

async function runRawBoss(round: number): Promise<Run> {
  const db = await createScratchDatabase('tp_pgboss', { migrate: false });
  try {
    const { boss, stop, send } = await startRawBoss(db.url);
    try {
      await startRawWorkers(boss, RAW_QUEUE);
      const result = await measure(db, send, RAW_PROBE);
      return { system: 'pg-boss', round, ...result };
    } finally {
      await stop();
    }
  } finally {
    await db.drop();
  }
}

/** batchSize 1 × workerConcurrency, as opsgraph's runner; see `--raw` above. */
async function startRawWorkers(boss: PgBoss, queue: string): Promise<void> {
  const options = {
    batchSize: 1,
    pollingIntervalSeconds: reference.bossPollingSeconds,
    notifyPollingIntervalSeconds: reference.bossNotifyPollingSeconds,
  };
  type Data = { operationId: string };
  const handler = async ([job]: Job<Data>[]) => ({
    steps: 0,
    elapsedMs: 0,
    operationId: job?.data.operationId,
  });
  if (args.raw === 'plain') {
    await boss.work<Data>(queue, { ...options, localConcurrency: reference.workerConcurrency }, handler);
    return;
  }
  for (let i = 0; i < reference.workerConcurrency; i += 1) {
    let workerId = '';
    workerId = await boss.work<Data>(queue, { ...options, localConcurrency: 1 }, async (jobs) => {
      try {
        return await handler(jobs);
      } finally {
        boss.notifyWorker(workerId); // fetch again at once instead of sleeping
      }
    });
  }
}

/** A drained backlog: `completed` jobs between the first start and the last completion. */
interface Drain {
  system: Run['system'];
  round: number;
  completed: number;
  stalled: boolean;
  drainMs: number;
  /** CPU time of the process running the workers over the drain, per job, in ms. */
  cpuMsPerJob: number;
  /** Statements this process sent over the drain (its workers' and the count's polls), per job. */
  statementsPerJob: number;
}

/** Statements sent through `pg` by this process (the drains' workers run in it). */
let statements = 0;
/** With OPSGRAPH_BENCH_STATEMENT_KINDS=1: statements by their first 60 characters, printed at the end. */
const kinds = process.env.OPSGRAPH_BENCH_STATEMENT_KINDS ? new Map<string, number>() : undefined;
const clientQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function countedQuery(this: pg.Client, ...args: unknown[]) {
  statements += 1;
  if (kinds) {
    const first = args[0] as string | { text?: string; name?: string };
    const text = typeof first === 'string' ? first : (first?.name ?? first?.text ?? '?');
    const kind = text.replace(/\s+/g, ' ').trim().slice(0, 60);
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return (clientQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof pg.Client.prototype.query;

/** Waits for `n` completions of a backlog, then reads first started → last completed. */
async function drained(
  db: ScratchDatabase,
  probe: Probe,
  n: number,
  cpu: () => Promise<number>,
): Promise<Omit<Drain, 'system' | 'round'>> {
  const cpuBefore = await cpu();
  const statementsBefore = statements;
  kinds?.clear();
  const done = await waitForCount(db.pool, probe.completed, [...probe.values, new Date(0)], n, {
    stallMs: args.stall * 1000,
  });
  const { rows } = await db.pool.query<TimingRow>(probe.timings, [...probe.values, new Date(0)]);
  const first = Math.min(...rows.map((row) => row.started.getTime()));
  const last = Math.max(...rows.map((row) => row.completed.getTime()));
  const cpuMsPerJob = ((await cpu()) - cpuBefore) * (1000 / Math.max(1, rows.length));
  const statementsPerJob = (statements - statementsBefore) / Math.max(1, rows.length);
  if (kinds) {
    const top = [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 15);
    for (const [kind, count] of top) console.log(`    ${fixed(count / rows.length, 3)}/job  ${kind}`);
    kinds.clear();
  }
  return {
    completed: rows.length,
    stalled: done.stalled,
    drainMs: Math.max(1, last - first),
    cpuMsPerJob,
    statementsPerJob,
  };
}

async function drainOpsgraph(round: number): Promise<Drain> {
  const db = await createScratchDatabase('tp_drain', { migrate: true });
  try {
    // In this process, like the raw workers (so both CPU figures are this process's), and without
    // a server process that may take longer than spawnServer's 30 s to load on a loaded machine.
    const quotas = { quotaMaxActive: 10_000_000, quotaStartsPerMinute: 10_000_000 };
    const channelPrefix = uniquePrefix();
    // The backlog: started through an API-only instance, so nothing runs them yet.
    const api = await startTestApp(db.url, { role: 'api', channelPrefix, ...quotas });
    try {
      const token = await tokenFor(db.url, 'bench');
      const variables = { input: { type: diagnosticsSleep.name, input: INPUT } };
      await inParallel(args.drain, args.clients, async () => {
        const response = await gql(api.url, StartTrivial, variables, token);
        if (response.data?.startOperation.__typename !== 'StartOperationSuccess') {
          throw new Error(`startOperation failed: ${JSON.stringify(response)}`);
        }
      });
    } finally {
      await api.close();
    }
    const worker = await startTestApp(db.url, { role: 'worker', channelPrefix, ...quotas });
    try {
      const result = await drained(db, OPSGRAPH_PROBE, args.drain, ownCpu);
      return { system: 'opsgraph', round, ...result };
    } finally {
      await worker.close();
    }
  } finally {
    await db.drop();
  }
}

/** CPU seconds of this process so far. */
const ownCpu = async () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

async function drainRawBoss(round: number): Promise<Drain> {
  const db = await createScratchDatabase('tp_drain_pgboss', { migrate: false });
  try {
    const { boss, stop, send } = await startRawBoss(db.url);
    try {
      await inParallel(args.drain, args.clients, send);
      await startRawWorkers(boss, RAW_QUEUE);
      // The raw workers run in this process (which also polls for the count).
      const result = await drained(db, RAW_PROBE, args.drain, ownCpu);
      return { system: 'pg-boss', round, ...result };
    } finally {
      await stop();
    }
  } finally {
    await db.drop();
  }
}

/** The worker side alone: `--drain` queued operations / jobs, alternating, medians. */
async function benchDrain() {
  console.log(
    `\nworker drain: a backlog of ${args.drain} queued before any worker runs, ${args.rounds} round(s) each`,
  );
  const drains: Drain[] = [];
  for (let round = 1; round <= args.rounds; round += 1) {
    for (const run of [drainOpsgraph, drainRawBoss]) {
      const result = await run(round);
      drains.push(result);
      console.log(
        `  drain round ${round} ${result.system.padEnd(8)} ${fixed(drainRate(result), 0).padStart(6)} jobs/s, ` +
          `${result.completed}/${args.drain} in ${fixed(result.drainMs / 1000, 2)} s${result.stalled ? ' (stalled)' : ''}, ` +
          `worker CPU ${fixed(result.cpuMsPerJob, 2)} ms/job, ${fixed(result.statementsPerJob, 2)} statements/job`,
      );
    }
  }
  const ours = median(drains.filter((d) => d.system === 'opsgraph').map(drainRate));
  const raw = median(drains.filter((d) => d.system === 'pg-boss').map(drainRate));
  console.log(
    `drain ratio opsgraph / raw pg-boss = ${fixed(ours / raw, 2)} (${fixed(ours, 0)} vs ${fixed(raw, 0)} jobs/s, medians)`,
  );
}

const drainRate = (drain: Drain) => (drain.completed / drain.drainMs) * 1000;
const opsPerSecond = (run: Run) => (run.completed / run.totalMs) * 1000;
const stalledMark = (run: Run) => (run.stalled ? ' (stalled)' : '');

await runBench(async () => {
  if (args.n > 0) await benchThroughput();
  if (args.drain > 0) await benchDrain();
});

/** The end-to-end part: `--n` operations started over HTTP beside raw pg-boss send → work. */
async function benchThroughput() {
  console.log(
    `throughput: N=${args.n} trivial operations (${diagnosticsSleep.name} ${JSON.stringify(INPUT)}), ` +
      `${args.clients} concurrent clients; workers batchSize 1 × localConcurrency ${reference.workerConcurrency}, ` +
      `LISTEN/NOTIFY on (queue notify: true), raw workers: ${args.raw}; ` +
      `${args.rounds} round(s) of opsgraph then raw pg-boss, each after a warm-up of ${args.warmup}`,
  );
  const runs: Run[] = [];
  for (let round = 1; round <= args.rounds; round += 1) {
    for (const run of [runOpsgraph, runRawBoss]) {
      const result = await run(round);
      runs.push(result);
      console.log(
        `  round ${round} ${result.system.padEnd(8)} ${fixed(opsPerSecond(result), 0).padStart(6)} ops/s, ` +
          `${result.completed}/${args.n} completed in ${fixed(result.totalMs / 1000, 2)} s${stalledMark(result)}`,
      );
    }
  }

  printTable(
    'Runs (total = first request → last completion; requests = until the last request was answered)',
    ['round', 'system', 'done', 'ops/s', 'total s', 'requests s', 'req p50 ms', 'req p95 ms', 'req max ms'],
    runs.map((run) => [
      String(run.round),
      run.system,
      `${run.completed}/${args.n}${run.stalled ? ' STALLED' : ''}`,
      fixed(opsPerSecond(run), 0),
      fixed(run.totalMs / 1000, 2),
      fixed(run.sendMs / 1000, 2),
      fixed(percentile(run.requestMs, 50), 1),
      fixed(percentile(run.requestMs, 95), 1),
      fixed(Math.max(...run.requestMs), 1),
    ]),
  );
  printTable(
    'Where the time goes, per operation (database timestamps): queued = created → started, run = started → completed',
    ['round', 'system', 'queued p50 ms', 'queued p95 ms', 'queued max ms', 'run p50 ms', 'run p95 ms'],
    runs.map((run) => [
      String(run.round),
      run.system,
      fixed(percentile(run.waitMs, 50), 0),
      fixed(percentile(run.waitMs, 95), 0),
      fixed(Math.max(...run.waitMs), 0),
      fixed(percentile(run.runMs, 50), 1),
      fixed(percentile(run.runMs, 95), 1),
    ]),
  );

  const of = (system: Run['system']) => runs.filter((run) => run.system === system);
  const ours = median(of('opsgraph').map(opsPerSecond));
  const raw = median(of('pg-boss').map(opsPerSecond));
  const ratio = ours / raw;
  const stalled = runs.filter((run) => run.stalled);
  printTable(
    `Summary (median of ${args.rounds} run(s) each)`,
    ['system', 'ops/s', 'ratio', 'target'],
    [
      ['opsgraph', fixed(ours, 0), fixed(ratio, 2), '≥ 0.50'],
      [`raw pg-boss (${args.raw})`, fixed(raw, 0), '1.00', ''],
    ],
  );
  const verdict = stalled.length > 0 ? 'not met: runs stalled' : ratio >= 0.5 ? 'met' : 'not met';
  console.log(`\nratio opsgraph / raw pg-boss = ${fixed(ratio, 2)} (target ≥ 0.50: ${verdict})`);
  for (const run of stalled) {
    console.log(
      `  ${run.system} round ${run.round}: ${args.n - run.completed} of ${args.n} operations were still waiting ` +
        `${args.stall} s after the last completion; ops/s counts only what completed before that.`,
    );
  }
}
