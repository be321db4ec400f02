import { randomUUID } from 'node:crypto';
import { type Job, PgBoss } from 'pg-boss';
import type { Config } from '../src/config.ts';
import { jobOptions } from '../src/operations/queues.ts';
import { diagnosticsSleep } from '../src/operations/types/diagnostics-sleep.ts';
import { spawnServer, testConfig, uniquePrefix } from '../test/support/app.ts';
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
 *                                        [--raw refetch|plain]
 *
 * `--raw refetch` (default): the raw workers fetch again as soon as a job is done (each worker
 * wakes itself with `notifyWorker`). `--raw plain`: pg-boss' own loop, which after every job
 * sleeps `notifyPollingIntervalSeconds` (30 s) unless a NOTIFY arrived meanwhile, so a backlog
 * left when the senders stop drains at one job per worker per 30 s (opsgraph's runner, as of this
 * writing, behaves like `plain`). A run whose completions stop growing for `--stall` seconds is
 * reported as stalled, with what had completed until then.
 */

const args = readArgs(
  {
    n: { default: 2000, min: 1 },
    clients: { default: 16, min: 1 },
    rounds: { default: 2, min: 1 },
    warmup: { default: 50, min: 0 },
    stall: { default: 5, min: 1 },
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

async function runOpsgraph(round: number): Promise<Run> {
  const db = await createScratchDatabase('tp_opsgraph', { migrate: true });
  try {
    // The server runs as its own process, as deployed; this process only sends requests.
    const app = await spawnServer({
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
      const result = await measure(
        db,
        async () => {
          const response = await gql(app.url, StartTrivial, variables, token);
          if (response.data?.startOperation.__typename !== 'StartOperationSuccess') {
            throw new Error(`startOperation failed: ${JSON.stringify(response)}`);
          }
        },
        {
          completed: `SELECT count(*)::int AS n FROM "Operation" WHERE "createdAt" >= $1 AND status = 'COMPLETED'`,
          timings: `SELECT "createdAt" AS created, "startedAt" AS started, "completedAt" AS completed
                      FROM "Operation" WHERE "createdAt" >= $1 AND status = 'COMPLETED'`,
          values: [],
        },
      );
      return { system: 'opsgraph', round, ...result };
    } finally {
      await close();
    }
  } finally {
    await db.drop();
  }
}

async function runRawBoss(round: number): Promise<Run> {
  const db = await createScratchDatabase('tp_pgboss', { migrate: false });
  try {
    // As opsgraph's startBoss: LISTEN/NOTIFY on, a pool of 10.
    const boss = new PgBoss({ connectionString: db.url, useListenNotify: true, max: 10 });
    boss.on('error', (error: Error) => console.error(`pg-boss error: ${error.message}`));
    await boss.start();
    const stop = defer(() => boss.stop({ graceful: false, timeout: 5000 }));
    try {
      // The same queue and job options as opsgraph's for diagnostics.sleep.
      const queue = 'bench-trivial';
      const options = jobOptions(diagnosticsSleep.policy);
      await boss.createQueue(queue, { notify: true, ...options });
      await startRawWorkers(boss, queue);
      const result = await measure(
        db,
        async () => {
          await boss.send(queue, { operationId: randomUUID() }, { id: randomUUID(), ...options });
        },
        {
          completed: `SELECT count(*)::int AS n FROM pgboss.job
                        WHERE name = $1 AND created_on >= $2 AND state = 'completed'`,
          timings: `SELECT created_on AS created, started_on AS started, completed_on AS completed
                      FROM pgboss.job WHERE name = $1 AND created_on >= $2 AND state = 'completed'`,
          values: [queue],
        },
      );
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

const opsPerSecond = (run: Run) => (run.completed / run.totalMs) * 1000;
const stalledMark = (run: Run) => (run.stalled ? ' (stalled)' : '');

await runBench(async () => {
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
});
