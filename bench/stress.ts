import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
import pg from 'pg';
import { checkLedger } from '../src/credits/invariant.ts';
import { migrate } from '../src/db/migrate.ts';
import { type ServerProcess, spawnServer, uniquePrefix } from '../test/support/app.ts';
import { gql, tokenFor } from '../test/support/client.ts';
import { adminQuery } from '../test/support/db.ts';
import { StartTrivial } from '../test/support/documents.ts';
import { databaseUrl, REDIS_URL } from '../test/support/services.ts';
import { BENCH_QUOTAS, inParallel, percentile, prng } from './support.ts';

/**
 * Stress run (issue 3, last acceptance point): N operations with random failures, retries, permanent
 * failures and cancels, while one worker process is SIGKILLed every few seconds and replaced. At the
 * end every operation must be in exactly one terminal state, consistent with its events and with
 * what it was asked to do; the script prints the counts and exits 1 when any invariant fails.
 *
 *   npm run bench:stress -- [--n 10000] [--workers 3] [--kill-every 5] [--clients 16]
 *                           [--concurrency 16] [--cancel-pct 10] [--timeout 300] [--seed N]
 *
 * One API process (OPSGRAPH_ROLE=api) and `--workers` worker processes on a scratch database of the
 * shared PostgreSQL (dropped at the end, also on errors and Ctrl-C) and the shared Redis (a unique
 * channel prefix). `--clients` HTTP requests in flight start the operations; about `--cancel-pct` %
 * of them are cancelled at a random moment. Kills (`--kill-every` seconds; 0 = none) go on until
 * every operation has been submitted and picked up once; the run then waits (up to `--timeout`
 * seconds) until nothing is PENDING or PROCESSING. Kept on purpose independent of bench/support.ts.
 */

/** Names of pino's numeric levels above info. */
const PINO_LEVELS: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' };

// ---------------------------------------------------------------- arguments

const OPTIONS = {
  n: { default: 10_000, min: 1 },
  workers: { default: 3, min: 1 },
  'kill-every': { default: 5, min: 0 },
  clients: { default: 16, min: 1 },
  concurrency: { default: 16, min: 1 },
  'cancel-pct': { default: 10, min: 0 },
  timeout: { default: 300, min: 1 },
  seed: { default: Math.floor(Math.random() * 2 ** 31), min: 0 },
} as const;
type OptionName = keyof typeof OPTIONS;

function readArgs(): Record<OptionName, number> {
  const names = Object.keys(OPTIONS) as OptionName[];
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: Object.fromEntries(names.map((name) => [name, { type: 'string' as const }])),
      strict: true,
    }));
  } catch (error) {
    console.error(`${(error as Error).message}; options: ${names.map((name) => `--${name}`).join(' ')}`);
    process.exit(2);
  }
  const result = {} as Record<OptionName, number>;
  for (const name of names) {
    const raw = values[name];
    const value = raw === undefined ? OPTIONS[name].default : Number(raw);
    if (!Number.isInteger(value) || value < OPTIONS[name].min) {
      console.error(`--${name} must be an integer ≥ ${OPTIONS[name].min} (got ${String(raw)})`);
      process.exit(2);
    }
    result[name] = value;
  }
  return result;
}

const args = readArgs();

// ---------------------------------------------------------------- the planned workload

/** What an operation was asked to do, which decides the outcomes it may end with. */
type Kind = 'ok' | 'fail' | 'flaky' | 'permanent';
const KINDS: readonly Kind[] = ['ok', 'fail', 'flaky', 'permanent'];
const KIND_WEIGHTS: Record<Kind, number> = { ok: 0.5, fail: 0.15, flaky: 0.2, permanent: 0.15 };
const KIND_LABEL: Record<Kind, string> = {
  ok: 'ok        (sleep, no failure)',
  fail: 'fail      (sleep, failAtStep)',
  flaky: 'flaky     (flaky, failAttempts 1–2)',
  permanent: 'permanent (flaky, permanent failure)',
};
/** diagnostics.flaky's retry limit (3 retries): its last attempt is the 4th. */
const FLAKY_MAX_ATTEMPTS = 4;

interface DiagnosticsInput {
  steps: number;
  stepMs: number;
  failAtStep?: number;
  failAttempts?: number;
  permanent?: boolean;
}

type CancelOutcome =
  | { kind: 'cancelled' }
  | { kind: 'too-late'; from: string }
  | { kind: 'error'; detail: string };

interface Planned {
  kind: Kind;
  type: 'diagnostics.sleep' | 'diagnostics.flaky';
  input: DiagnosticsInput;
  /** ms after the start answered at which to cancel, or null. */
  cancelAfterMs: number | null;
  /** Operation uuid once started. */
  uuid?: string;
  startError?: string;
  cancel?: CancelOutcome;
}

const random = prng(args.seed);
/** An integer in [min, max]. */
const between = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));

function plan(): Planned {
  let pick = random();
  let kind: Kind = 'ok';
  for (const k of KINDS) {
    if (pick < KIND_WEIGHTS[k]) {
      kind = k;
      break;
    }
    pick -= KIND_WEIGHTS[k];
  }
  const stepMs = between(0, 50);
  const cancelAfterMs =
    random() < args['cancel-pct'] / 100 ? (random() < 0.5 ? between(0, 150) : between(0, 3000)) : null;
  switch (kind) {
    case 'ok':
      return { kind, type: 'diagnostics.sleep', input: { steps: between(0, 5), stepMs }, cancelAfterMs };
    case 'fail': {
      const steps = between(1, 5);
      return {
        kind,
        type: 'diagnostics.sleep',
        input: { steps, stepMs, failAtStep: between(1, steps) },
        cancelAfterMs,
      };
    }
    case 'flaky': {
      const steps = between(1, 5);
      return {
        kind,
        type: 'diagnostics.flaky',
        input: { steps, stepMs, failAtStep: between(1, steps), failAttempts: between(1, 2) },
        cancelAfterMs,
      };
    }
    case 'permanent': {
      const steps = between(1, 5);
      return {
        kind,
        type: 'diagnostics.flaky',
        input: { steps, stepMs, failAtStep: between(1, steps), permanent: true },
        cancelAfterMs,
      };
    }
  }
}

// ---------------------------------------------------------------- small helpers

const closers: (() => Promise<unknown>)[] = [];
/** Set on Ctrl-C / SIGTERM: the load, the kills and the progress lines stop while clean-up runs. */
let aborting = false;
let cleaning: Promise<void> | undefined;
/** Runs the registered clean-up in reverse order, once; failures are printed, not thrown. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    while (closers.length > 0) {
      await closers.pop()!().catch((error: Error) => console.error(`clean-up failed: ${error.message}`));
    }
  })();
  return cleaning;
}

const seconds = (ms: number) => (Number.isNaN(ms) ? '–' : `${(ms / 1000).toFixed(1)} s`);
const pad = (value: string | number, width: number) => String(value).padStart(width);
const describeError = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** GraphQL global ids are base64 of `Operation:<uuid>`. */
const uuidOf = (globalId: string) => Buffer.from(globalId, 'base64').toString().split(':')[1] ?? globalId;
const globalIdOf = (uuid: string) => Buffer.from(`Operation:${uuid}`).toString('base64');

interface CancelData {
  cancelOperation:
    | { __typename: 'CancelOperationSuccess'; operation: { status: string } }
    | { __typename: 'IllegalTransitionError'; from: string; to: string }
    | { __typename: 'NotFoundError' | 'ForbiddenError' | 'ValidationError'; message: string };
}
const Cancel = parse(`
  mutation StressCancel($id: ID!) {
    cancelOperation(input: { id: $id, reason: "stress" }) {
      __typename
      ... on CancelOperationSuccess { operation { status } }
      ... on IllegalTransitionError { from to }
      ... on NotFoundError { message }
      ... on ForbiddenError { message }
      ... on ValidationError { message }
    }
  }
`) as TypedDocumentNode<CancelData, { id: string }>;

// ---------------------------------------------------------------- the run

const STATUSES = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
type Status = (typeof STATUSES)[number];
const TERMINAL: readonly string[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

interface WorkerProcess {
  name: string;
  instanceId: string;
  proc: ServerProcess;
}

interface Kill {
  name: string;
  instanceId: string;
  at: number;
  /** Operations PROCESSING on that worker when it died, with their sequence then. */
  held: { id: string; sequence: number }[];
}

/** One invariant's verdict. */
interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

async function main(): Promise<boolean> {
  const runStarted = Date.now();
  const n = args.n;
  console.log(
    `stress: n=${n} workers=${args.workers} kill-every=${args['kill-every']} s clients=${args.clients} ` +
      `worker concurrency=${args.concurrency}/type cancel≈${args['cancel-pct']}% timeout=${args.timeout} s seed=${args.seed}`,
  );

  // Scratch database, migrated before any process starts (no migration race between processes).
  const dbName = `opsgraph_bench_stress_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE "${dbName}"`);
  closers.push(() => adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`));
  const url = databaseUrl(dbName);
  await migrate(url);
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  pool.on('error', () => {}); // a connection the forced drop terminates
  closers.push(() => pool.end());
  const token = await tokenFor(url, 'stress');

  // Processes.
  const prefix = uniquePrefix().replace('opsgraph-test-', 'opsgraph-stress-');
  const common = {
    DATABASE_URL: url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: prefix,
    OPSGRAPH_SHUTDOWN_GRACE_MS: '2000',
    ...BENCH_QUOTAS,
  };
  const everyProcess: { name: string; proc: ServerProcess }[] = [];
  const pendingSpawns = new Set<Promise<unknown>>();
  closers.push(async () => {
    await Promise.allSettled([...pendingSpawns]);
    await stopAll(everyProcess.map((p) => p.proc));
  });

  const api = await spawnServer({ ...common, OPSGRAPH_ROLE: 'api' });
  everyProcess.push({ name: 'api', proc: api });

  const live: WorkerProcess[] = [];
  /** How long each worker took from spawn to its ready line. */
  const startupMs: number[] = [];
  let workerCount = 0;
  const spawnWorker = async (): Promise<WorkerProcess> => {
    workerCount += 1;
    const spawnedAt = Date.now();
    const name = `w${workerCount}`;
    const instanceId = `stress-${name}-${randomBytes(3).toString('hex')}`;
    const spawning = spawnServer({
      ...common,
      OPSGRAPH_ROLE: 'worker',
      OPSGRAPH_INSTANCE_ID: instanceId,
      OPSGRAPH_WORKER_CONCURRENCY: String(args.concurrency),
      OPSGRAPH_RECONCILE_INTERVAL_MS: '1000',
      OPSGRAPH_RECONCILE_MIN_AGE_SECONDS: '2',
    });
    pendingSpawns.add(spawning);
    try {
      const proc = await spawning;
      startupMs.push(Date.now() - spawnedAt);
      everyProcess.push({ name, proc });
      const worker = { name, instanceId, proc };
      live.push(worker);
      return worker;
    } finally {
      pendingSpawns.delete(spawning);
    }
  };
  await Promise.all(Array.from({ length: args.workers }, spawnWorker));
  console.log(`started: api + ${args.workers} workers (${seconds(Date.now() - runStarted)} after launch)`);

  const problems: string[] = [];
  const planned = Array.from({ length: n }, plan);

  // Monitor: status counts every 500 ms, a progress line every 3 s.
  let snapshot: Record<Status, number> & { fresh: number } = {
    PENDING: 0,
    PROCESSING: 0,
    COMPLETED: 0,
    FAILED: 0,
    CANCELLED: 0,
    fresh: 0,
  };
  let submitted = 0;
  let cancelsPlanned = 0;
  let cancelsDone = 0;
  let submissionDone = false;
  let monitoring = true;
  const kills: Kill[] = [];
  const loadStarted = Date.now();
  const progressLine = () => {
    const counts = STATUSES.map((s) => `${s} ${snapshot[s]}`).join(' · ');
    return (
      `[${pad(`${((Date.now() - loadStarted) / 1000) | 0}s`, 5)}] submitted ${submitted}/${n} · ` +
      `cancels ${cancelsDone}/${cancelsPlanned} · kills ${kills.length} · workers up ${live.length} · ${counts}`
    );
  };
  const monitor = (async () => {
    let lastPrint = 0;
    while (monitoring) {
      try {
        const { rows } = await pool.query<{ status: Status; n: number; fresh: number }>(
          `SELECT status::text AS status, count(*)::int AS n,
                  count(*) FILTER (WHERE status = 'PENDING' AND attempt = 0)::int AS fresh
             FROM "Operation" GROUP BY status`,
        );
        const next = { PENDING: 0, PROCESSING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0, fresh: 0 };
        for (const row of rows) {
          next[row.status] = row.n;
          next.fresh += row.fresh;
        }
        snapshot = next;
      } catch (error) {
        problems.push(`monitor query failed: ${describeError(error)}`);
      }
      if (aborting) break;
      if (Date.now() - lastPrint >= 3000) {
        lastPrint = Date.now();
        console.log(progressLine());
      }
      await sleep(500);
    }
  })();

  // Kills: SIGKILL a random ready worker every `--kill-every` s and start a replacement, until every
  // operation has been submitted and picked up at least once. The last worker up is never killed (a
  // replacement can take longer to start than the kill period on a loaded machine): that tick skips.
  let killing = args['kill-every'] > 0;
  let skippedKills = 0;
  const killer = (async () => {
    while (killing) {
      await sleep(args['kill-every'] * 1000);
      if (!killing || aborting) break;
      if (submissionDone && snapshot.fresh === 0) break;
      if (live.length < Math.min(2, args.workers)) {
        skippedKills += 1;
        continue;
      }
      const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0]!;
      const at = Date.now();
      victim.proc.child.kill('SIGKILL');
      await victim.proc.exited;
      const { rows } = await pool.query<{ id: string; sequence: number }>(
        `SELECT id::text, sequence FROM "Operation" WHERE status = 'PROCESSING' AND "workerId" = $1`,
        [victim.instanceId],
      );
      kills.push({ name: victim.name, instanceId: victim.instanceId, at, held: rows });
      console.log(
        `  SIGKILL ${victim.name} (pid ${victim.proc.child.pid}) holding ${rows.length} PROCESSING operation(s); starting a replacement`,
      );
      spawnWorker().catch((error) => problems.push(`replacement worker failed: ${describeError(error)}`));
    }
    killing = false;
  })();

  // Submission with bounded concurrency; cancels fire later, at their planned moment.
  const cancels: Promise<void>[] = [];
  const cancel = async (op: Planned) => {
    try {
      const response = await gql(api.url, Cancel, { id: globalIdOf(op.uuid!) }, token);
      const result = response.data?.cancelOperation;
      if (result?.__typename === 'CancelOperationSuccess') op.cancel = { kind: 'cancelled' };
      else if (result?.__typename === 'IllegalTransitionError')
        op.cancel = { kind: 'too-late', from: result.from };
      else
        op.cancel = { kind: 'error', detail: JSON.stringify(result ?? response.errors ?? response.status) };
    } catch (error) {
      op.cancel = { kind: 'error', detail: describeError(error) };
    }
    cancelsDone += 1;
  };
  await inParallel(n, args.clients, async (index) => {
    const op = planned[index]!;
    if (aborting) {
      op.startError = 'not started: interrupted';
      return;
    }
    try {
      const response = await gql(api.url, StartTrivial, { input: { type: op.type, input: op.input } }, token);
      const result = response.data?.startOperation;
      if (result?.__typename === 'StartOperationSuccess') op.uuid = uuidOf(result.operation.id);
      else op.startError = JSON.stringify(result ?? response.errors ?? response.status);
    } catch (error) {
      op.startError = describeError(error);
    }
    submitted += 1;
    if (op.uuid && op.cancelAfterMs !== null) {
      cancelsPlanned += 1;
      cancels.push(sleep(op.cancelAfterMs).then(() => cancel(op)));
    }
  });
  await Promise.all(cancels);
  submissionDone = true;
  const submitMs = Date.now() - loadStarted;
  console.log(`submitted ${n} operations and ${cancelsDone} cancels in ${seconds(submitMs)}`);

  // Drain: nothing PENDING or PROCESSING, bounded.
  const drainDeadline = Date.now() + args.timeout * 1000;
  let drained = false;
  for (;;) {
    const { rows } = await pool.query<{ active: number }>(
      `SELECT count(*)::int AS active FROM "Operation" WHERE status IN ('PENDING', 'PROCESSING')`,
    );
    if (rows[0]!.active === 0) {
      drained = true;
      break;
    }
    if (Date.now() > drainDeadline) break;
    await sleep(250);
  }
  const drainedAt = Date.now();
  killing = false;
  monitoring = false;
  await Promise.all([killer, monitor]);
  if (!drained) console.log(`\nNOT DRAINED after ${args.timeout} s: ${progressLine()}`);
  else
    console.log(
      `drained: nothing PENDING or PROCESSING ${seconds(drainedAt - loadStarted)} after the first start`,
    );

  // Stop every process before checking, so nothing writes any more.
  await Promise.allSettled([...pendingSpawns]);
  await stopAll(everyProcess.map((p) => p.proc));

  const checks = await verify(pool, planned, kills, drained, problems);
  await report(pool, planned, kills, everyProcess, { loadStarted, submitMs, drainedAt, runStarted });
  console.log(
    `Workers: ${workerCount} started in all; start-up (spawn → ready) p50 ${seconds(percentile(startupMs, 50))}, ` +
      `max ${seconds(percentile(startupMs, 100))}; ${skippedKills} kill tick(s) skipped to keep one worker up`,
  );

  console.log('\nInvariants');
  for (const check of checks)
    console.log(`  ${check.ok ? 'ok  ' : 'FAIL'}  ${check.name}${check.detail ? ` — ${check.detail}` : ''}`);
  for (const problem of problems.slice(0, 20)) console.log(`  problem: ${problem}`);
  const ok = checks.every((check) => check.ok) && problems.length === 0;
  console.log(`\nstress ${ok ? 'PASSED' : 'FAILED'} (${seconds(Date.now() - runStarted)} in all)`);
  return ok;
}

/** SIGTERM, then SIGKILL whatever is still running after 15 s. */
async function stopAll(procs: ServerProcess[]): Promise<void> {
  await Promise.all(
    procs.map(async (proc) => {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), 15_000);
      await proc.stop('SIGTERM');
      clearTimeout(timer);
    }),
  );
}

// ---------------------------------------------------------------- checks

interface OperationRow {
  id: string;
  type: string;
  status: string;
  attempt: number;
  sequence: number;
  errorCode: string | null;
  resultAttempt: number | null;
  resultSteps: number | null;
  events: number;
  minSeq: number | null;
  maxSeq: number | null;
  terminal: number;
  completed: number;
  cancelled: number;
  started: number;
  retries: number;
  requestedRetries: number;
  workerLost: number;
  cancelledSeq: number | null;
  completedSeq: number | null;
  lastKind: string | null;
  lastStatus: string | null;
}

const ROWS_SQL = `
  SELECT o.id::text, o.type, o.status::text AS status, o.attempt, o.sequence,
         o.error->>'code' AS "errorCode",
         (o.result->>'attempt')::int AS "resultAttempt", (o.result->>'steps')::int AS "resultSteps",
         count(e.id)::int AS events,
         min(e.sequence)::int AS "minSeq", max(e.sequence)::int AS "maxSeq",
         count(*) FILTER (WHERE e.kind IN ('COMPLETED', 'FAILED', 'CANCELLED'))::int AS terminal,
         count(*) FILTER (WHERE e.kind = 'COMPLETED')::int AS completed,
         count(*) FILTER (WHERE e.kind = 'CANCELLED')::int AS cancelled,
         count(*) FILTER (WHERE e.kind = 'STARTED')::int AS started,
         count(*) FILTER (WHERE e.kind = 'RETRY_SCHEDULED')::int AS retries,
         count(*) FILTER (WHERE e.kind = 'RETRY_SCHEDULED' AND e.data->'error'->>'code' = 'REQUESTED_FAILURE')::int
           AS "requestedRetries",
         count(*) FILTER (WHERE e.data->'error'->>'code' = 'WORKER_LOST')::int AS "workerLost",
         max(e.sequence) FILTER (WHERE e.kind = 'CANCELLED')::int AS "cancelledSeq",
         max(e.sequence) FILTER (WHERE e.kind = 'COMPLETED')::int AS "completedSeq",
         (array_agg(e.kind ORDER BY e.sequence DESC))[1] AS "lastKind",
         (array_agg(e.status::text ORDER BY e.sequence DESC))[1] AS "lastStatus"
    FROM "Operation" o LEFT JOIN "OperationEvent" e ON e."operationId" = o.id
   GROUP BY o.id`;

/** Why an operation's end contradicts what it was asked to do (and what was done to it), or null. */
function classViolation(op: Planned, row: OperationRow): string | null {
  const { status } = row;
  // What the cancel request said decides whether CANCELLED is allowed.
  const cancel = op.cancel;
  if (cancel?.kind === 'cancelled' && status !== 'CANCELLED') return `cancel succeeded but ended ${status}`;
  if (cancel?.kind === 'too-late' && status !== cancel.from)
    return `cancel refused from ${cancel.from} but ended ${status}`;
  if (status === 'CANCELLED' && cancel?.kind !== 'cancelled' && cancel?.kind !== 'error')
    return 'CANCELLED without a successful cancel';
  if (status === 'CANCELLED') return null;
  const failAttempts = op.input.failAttempts ?? 0;
  switch (op.kind) {
    case 'ok':
      if (status === 'COMPLETED')
        return row.resultSteps === op.input.steps ? null : `result steps ${row.resultSteps}`;
      if (status === 'FAILED' && row.errorCode === 'WORKER_LOST' && row.workerLost > 0) return null;
      return `ended ${status} (${row.errorCode ?? 'no error'})`;
    case 'fail':
      if (status === 'FAILED' && row.errorCode === 'REQUESTED_FAILURE')
        return row.started === 1 ? null : `failed after ${row.started} attempts (no retries expected)`;
      if (status === 'FAILED' && row.errorCode === 'WORKER_LOST' && row.workerLost > 0) return null;
      return `ended ${status} (${row.errorCode ?? 'no error'})`;
    case 'flaky':
      if (status === 'COMPLETED') {
        if (row.resultAttempt !== row.attempt)
          return `result of attempt ${row.resultAttempt}, row attempt ${row.attempt}`;
        if (row.attempt <= failAttempts)
          return `completed at attempt ${row.attempt} ≤ failAttempts ${failAttempts}`;
        if (row.requestedRetries > failAttempts)
          return `${row.requestedRetries} requested failures > ${failAttempts}`;
        if (row.retries !== row.attempt - 1) return `${row.retries} retries before attempt ${row.attempt}`;
        return null;
      }
      // Only a lost worker can use up the attempts that the requested failures leave.
      if (status === 'FAILED' && row.workerLost > 0 && row.attempt === FLAKY_MAX_ATTEMPTS) return null;
      return `ended ${status} (${row.errorCode ?? 'no error'}) at attempt ${row.attempt}`;
    case 'permanent':
      if (row.requestedRetries > 0) return `${row.requestedRetries} retries after a non-retryable failure`;
      if (status === 'FAILED' && row.errorCode === 'REQUESTED_FAILURE') return null;
      if (status === 'FAILED' && row.errorCode === 'WORKER_LOST' && row.attempt === FLAKY_MAX_ATTEMPTS)
        return null;
      return `ended ${status} (${row.errorCode ?? 'no error'})`;
  }
}

async function verify(
  pool: pg.Pool,
  planned: Planned[],
  kills: Kill[],
  drained: boolean,
  problems: string[],
): Promise<Check[]> {
  const checks: Check[] = [];
  const check = (name: string, failures: string[], total?: number) =>
    checks.push({
      name,
      ok: failures.length === 0,
      detail: failures.length
        ? `${failures.length}${total === undefined ? '' : ` of ${total}`}: ${failures.slice(0, 5).join('; ')}`
        : '',
    });
  const n = planned.length;
  const { rows } = await pool.query<OperationRow>(ROWS_SQL);
  const byId = new Map(rows.map((row) => [row.id, row]));

  const startErrors = planned.filter((op) => op.startError);
  check(
    'every startOperation succeeded',
    startErrors.map((op) => op.startError!),
    n,
  );
  const cancelErrors = planned.filter((op) => op.cancel?.kind === 'error');
  check(
    'every cancelOperation answered CancelOperationSuccess or IllegalTransitionError',
    cancelErrors.map((op) => (op.cancel as { detail: string }).detail),
  );
  check('drained: nothing PENDING or PROCESSING within the timeout', drained ? [] : ['timed out']);

  const counts = new Map<string, number>();
  for (const row of rows) counts.set(row.status, (counts.get(row.status) ?? 0) + 1);
  const sum = [...counts.values()].reduce((a, b) => a + b, 0);
  const terminalSum = TERMINAL.reduce((a, s) => a + (counts.get(s) ?? 0), 0);
  check(
    `status counts add up to N (${TERMINAL.map((s) => `${s} ${counts.get(s) ?? 0}`).join(' + ')} = ${terminalSum}; N = ${n})`,
    terminalSum === n && sum === n && rows.length === n
      ? []
      : [`${rows.length} rows, ${sum} counted, ${terminalSum} terminal`],
  );
  check(
    'every started operation exists',
    planned.filter((op) => op.uuid && !byId.has(op.uuid)).map((op) => op.uuid!),
  );

  const failures = {
    terminal: [] as string[],
    oneTerminalEvent: [] as string[],
    lastEvent: [] as string[],
    sequence: [] as string[],
    completedAfterCancelled: [] as string[],
    classes: [] as string[],
  };
  for (const row of rows) {
    const tag = `${row.id.slice(0, 8)} ${row.status}`;
    if (!TERMINAL.includes(row.status)) failures.terminal.push(tag);
    if (row.terminal !== 1) failures.oneTerminalEvent.push(`${tag}: ${row.terminal} terminal events`);
    if (row.lastStatus !== row.status || !TERMINAL.includes(row.lastKind ?? ''))
      failures.lastEvent.push(`${tag}: last event ${row.lastKind} (${row.lastStatus})`);
    if (row.minSeq !== 1 || row.maxSeq !== row.events || row.sequence !== row.maxSeq)
      failures.sequence.push(
        `${tag}: sequence ${row.sequence}, events ${row.events} (${row.minSeq}…${row.maxSeq})`,
      );
    if (row.completed > 0 && row.cancelled > 0)
      failures.completedAfterCancelled.push(
        `${tag}: COMPLETED at ${row.completedSeq}, CANCELLED at ${row.cancelledSeq}`,
      );
  }
  for (const op of planned) {
    const row = op.uuid ? byId.get(op.uuid) : undefined;
    if (!row) continue;
    const why = classViolation(op, row);
    if (why) failures.classes.push(`${row.id.slice(0, 8)} ${op.kind} ${JSON.stringify(op.input)}: ${why}`);
  }
  check('every operation is in a terminal state', failures.terminal, n);
  check(
    'exactly one terminal event (COMPLETED/FAILED/CANCELLED) per operation',
    failures.oneTerminalEvent,
    n,
  );
  check("status equals the last event's status, and that event is terminal", failures.lastEvent, n);
  check('event sequences are 1…sequence with no gap', failures.sequence, n);
  check('no COMPLETED after (or with) CANCELLED', failures.completedAfterCancelled, n);
  check('outcomes consistent with what was asked (class × cancel result × attempts)', failures.classes, n);

  // Operations a killed worker held: their next event is a WORKER_LOST repair or a user's cancel
  // (or what the worker's last statement, sent before the kill, recorded).
  const held = kills.flatMap((kill) => kill.held.map((h) => ({ ...h, at: kill.at })));
  const next = await nextEvents(pool, held);
  check(
    'every operation held by a killed worker got a WORKER_LOST repair (or was cancelled)',
    held
      .filter((h) => {
        const event = next.get(h.id);
        // Or the dead worker's own last statement, in flight when it was killed, committed just after.
        const inFlight =
          event !== undefined && event.at.getTime() - h.at < 1000 && event.code !== 'WORKER_LOST';
        return !event || !(event.code === 'WORKER_LOST' || event.kind === 'CANCELLED' || inFlight);
      })
      .map((h) => `${h.id.slice(0, 8)}: ${JSON.stringify(next.get(h.id) ?? null)}`),
    held.length,
  );
  // The credits ledger (issue 10): granted = balance + reserved + consumed for every user, and
  // every operation has one RESERVE and, once terminal, exactly one CONSUME or REFUND.
  const ledger = await checkLedger({
    $queryRawUnsafe: (async (sql: string, ...values: unknown[]) =>
      (await pool.query(sql, values)).rows) as never,
  });
  console.log(
    `\nCredits ledger: ${ledger.users} users, ${ledger.operations} operations; ` +
      ledger.balances
        .map(
          (u) =>
            `granted ${u.granted} = balance ${u.balance} + reserved ${u.reserved} + consumed ${u.consumed}`,
        )
        .join('; '),
  );
  check(
    'credits: for every user granted = balance + reserved + consumed (and reserved = open reservations)',
    ledger.badUsers.map((u) => JSON.stringify(u)),
    ledger.users,
  );
  check(
    'credits: every operation has one RESERVE, and exactly one CONSUME or REFUND once terminal',
    ledger.badOperations.map(
      (o) => `${o.operationId.slice(0, 8)} ${o.status}: ${o.reserves} reserves, ${o.settlements} settlements`,
    ),
    ledger.operations,
  );
  if (problems.length) check('no problems during the run', problems);
  return checks;
}

interface NextEvent {
  id: string;
  kind: string;
  code: string | null;
  at: Date;
}

/** For each (operation, sequence) the event right after it. */
async function nextEvents(
  pool: pg.Pool,
  held: { id: string; sequence: number }[],
): Promise<Map<string, NextEvent>> {
  if (held.length === 0) return new Map();
  const { rows } = await pool.query<NextEvent>(
    // The first event after the snapshot that is not a progress step: a statement the dead worker
    // had sent before SIGKILL can still commit after the snapshot (PostgreSQL finishes it).
    `SELECT DISTINCT ON (e."operationId") e."operationId"::text AS id, e.kind,
            e.data->'error'->>'code' AS code, e."createdAt" AS at
       FROM unnest($1::uuid[], $2::int[]) AS h(id, sequence)
       JOIN "OperationEvent" e ON e."operationId" = h.id AND e.sequence > h.sequence AND e.kind <> 'PROGRESS'
      ORDER BY e."operationId", e.sequence`,
    [held.map((h) => h.id), held.map((h) => h.sequence)],
  );
  return new Map(rows.map((row) => [row.id, row]));
}

// ---------------------------------------------------------------- report

async function report(
  pool: pg.Pool,
  planned: Planned[],
  kills: Kill[],
  processes: { name: string; proc: ServerProcess }[],
  time: { loadStarted: number; submitMs: number; drainedAt: number; runStarted: number },
): Promise<void> {
  const n = planned.length;
  const { rows } = await pool.query<OperationRow>(ROWS_SQL);
  const byId = new Map(rows.map((row) => [row.id, row]));

  console.log('\nCounts by status');
  const total = new Map<string, number>();
  for (const row of rows) total.set(row.status, (total.get(row.status) ?? 0) + 1);
  for (const status of STATUSES) console.log(`  ${status.padEnd(10)} ${pad(total.get(status) ?? 0, 7)}`);
  console.log(`  ${'total'.padEnd(10)} ${pad(rows.length, 7)}   (N = ${n})`);

  console.log('\nOutcomes by what was asked');
  console.log(`  ${'class'.padEnd(38)} ${['n', ...TERMINAL, 'other'].map((h) => pad(h, 9)).join(' ')}`);
  for (const kind of KINDS) {
    const ops = planned.filter((op) => op.kind === kind);
    const count = (status: string) =>
      ops.filter((op) => op.uuid && byId.get(op.uuid)?.status === status).length;
    const other = ops.length - TERMINAL.reduce((a, s) => a + count(s), 0);
    console.log(
      `  ${KIND_LABEL[kind].padEnd(38)} ${[ops.length, ...TERMINAL.map(count), other].map((v) => pad(v, 9)).join(' ')}`,
    );
  }

  const cancels = planned.filter((op) => op.cancel);
  const cancelCount = (kind: CancelOutcome['kind']) =>
    cancels.filter((op) => op.cancel?.kind === kind).length;
  console.log(
    `\nCancels: ${cancels.length} sent — ${cancelCount('cancelled')} cancelled, ` +
      `${cancelCount('too-late')} refused (already terminal), ${cancelCount('error')} errors`,
  );

  const { rows: eventRows } = await pool.query<{ kind: string; code: string | null; n: number }>(
    `SELECT kind, data->'error'->>'code' AS code, count(*)::int AS n FROM "OperationEvent"
      WHERE kind IN ('RETRY_SCHEDULED', 'FAILED', 'REQUEUED', 'RELEASED', 'SOFT_TIMEOUT')
      GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  console.log('\nEvents (retries, failures, repairs)');
  for (const row of eventRows)
    console.log(`  ${`${row.kind} ${row.code ?? ''}`.padEnd(38)} ${pad(row.n, 7)}`);

  const lost = rows.filter((row) => row.workerLost > 0);
  const lostEvents = lost.reduce((a, row) => a + row.workerLost, 0);
  const held = kills.flatMap((kill) => kill.held.map((h) => ({ ...h, at: kill.at })));
  const heldIds = new Set(held.map((h) => h.id));
  const unexplained = lost.filter((row) => !heldIds.has(row.id));
  const next = await nextEvents(pool, held);
  const detection = held
    .map((h) => ({ h, event: next.get(h.id) }))
    .filter(({ event }) => event?.code === 'WORKER_LOST')
    .map(({ h, event }) => event!.at.getTime() - h.at);
  console.log(
    `\nWorker kills: ${kills.length} SIGKILLs; ${held.length} operations were PROCESSING on a killed worker` +
      ` (${kills.map((kill) => kill.held.length).join(', ') || '–'})`,
  );
  const lostOutcomes = new Map<string, number>();
  for (const row of lost) {
    const key = row.status === 'FAILED' ? `FAILED ${row.errorCode}` : row.status;
    lostOutcomes.set(key, (lostOutcomes.get(key) ?? 0) + 1);
  }
  console.log(
    `  WORKER_LOST: ${lostEvents} events on ${lost.length} operations, which ended: ` +
      [...lostOutcomes].map(([key, count]) => `${key} ${count}`).join(' · '),
  );
  console.log(
    `  detection (SIGKILL → WORKER_LOST event) over ${detection.length} operations: ` +
      `p50 ${seconds(percentile(detection, 50))}, p95 ${seconds(percentile(detection, 95))}, max ${seconds(percentile(detection, 100))}`,
  );
  const perKill = kills
    .filter((kill) => kill.held.length > 0)
    .map((kill) => {
      const times = kill.held
        .map((h) => next.get(h.id))
        .filter((event) => event?.code === 'WORKER_LOST')
        .map((event) => event!.at.getTime() - kill.at);
      return `${kill.name}@${((kill.at - time.loadStarted) / 1000).toFixed(0)}s ${kill.held.length}→${seconds(percentile(times, 50))}/${seconds(percentile(times, 100))}`;
    });
  console.log('  per kill (worker@time held→detection p50/max):');
  for (let i = 0; i < perKill.length; i += 4) console.log(`    ${perKill.slice(i, i + 4).join('   ')}`);
  console.log(`  WORKER_LOST on operations not held by a killed worker at its death: ${unexplained.length}`);
  for (const row of unexplained.slice(0, 5))
    console.log(`    ${row.id} ${row.type} ${row.status} attempt ${row.attempt}`);

  // How late retries start after the time their RETRY_SCHEDULED event announced.
  const { rows: late } = await pool.query<{ ms: number }>(
    `SELECT (extract(epoch FROM s."createdAt" - (r.data->>'nextAttemptAt')::timestamptz) * 1000)::float8 AS ms
       FROM "OperationEvent" r
       JOIN "OperationEvent" s ON s."operationId" = r."operationId" AND s.sequence = r.sequence + 1
      WHERE r.kind = 'RETRY_SCHEDULED' AND s.kind = 'STARTED' AND r.data->>'nextAttemptAt' IS NOT NULL`,
  );
  const lateness = late.map((row) => row.ms);
  console.log(
    `\nRetry start lateness (nextAttemptAt → STARTED) over ${lateness.length} retries: ` +
      `p50 ${seconds(percentile(lateness, 50))}, p95 ${seconds(percentile(lateness, 95))}, ` +
      `max ${seconds(percentile(lateness, 100))}; ${lateness.filter((ms) => ms > 5000).length} started > 5 s late`,
  );

  const { rows: jobs } = await pool
    .query<{ name: string; state: string; n: number }>(
      `SELECT name, state::text, count(*)::int AS n FROM pgboss.job GROUP BY 1, 2 ORDER BY 1, 2`,
    )
    .catch(() => ({ rows: [] as { name: string; state: string; n: number }[] }));
  console.log(`\npg-boss jobs: ${jobs.map((j) => `${j.name} ${j.state} ${j.n}`).join(' · ')}`);

  // What the servers logged at warn/error level, by message (the killed ones included).
  const levels = new Map<string, number>();
  const errorLines: string[] = [];
  for (const { name, proc } of processes) {
    for (const line of proc.logs) {
      // pino lines: numeric `level` (30 info, 40 warn, 50 error, 60 fatal), `msg`.
      let entry: { level?: number | 'raw'; msg?: string; problem?: string; action?: string };
      try {
        entry = JSON.parse(line);
      } catch {
        entry = { level: 'raw', msg: line.slice(0, 120) };
      }
      if (typeof entry.level === 'number' && entry.level <= 30) continue;
      if (entry.msg !== 'attempt failed' && entry.msg !== 'repaired operation')
        errorLines.push(`${name}: ${line.slice(0, 600)}`);
      const role = name === 'api' ? 'api' : 'worker';
      const what =
        entry.msg === 'repaired operation'
          ? `repaired operation: ${entry.problem} → ${entry.action}`
          : entry.msg;
      const level = typeof entry.level === 'number' ? (PINO_LEVELS[entry.level] ?? entry.level) : entry.level;
      const key = `${level} ${role}: ${what}`;
      levels.set(key, (levels.get(key) ?? 0) + 1);
    }
  }
  console.log('\nServer log lines above info, by message');
  for (const [key, count] of [...levels].sort((a, b) => b[1] - a[1]).slice(0, 15))
    console.log(`  ${pad(count, 6)}  ${key}`);
  if (errorLines.length) console.log(`  other lines above info, verbatim (first 6 of ${errorLines.length}):`);
  for (const line of errorLines.slice(0, 6)) console.log(`    ${line}`);

  const { rows: last } = await pool.query<{ at: Date | null }>(
    `SELECT max("completedAt") AS at FROM "Operation"`,
  );
  const lastTerminal = last[0]?.at ? last[0].at.getTime() - time.loadStarted : Number.NaN;
  console.log(
    `\nTime: submission ${seconds(time.submitMs)}; first start → last terminal transition ${seconds(lastTerminal)} ` +
      `(${(n / (lastTerminal / 1000)).toFixed(1)} ops/s); drain observed at ${seconds(time.drainedAt - time.loadStarted)}; ` +
      `whole run ${seconds(Date.now() - time.runStarted)} including process start-up and checks`,
  );
}

// ---------------------------------------------------------------- entry point

let exitCode = 1;
const interrupted = (signal: string) => {
  aborting = true;
  console.error(`\n${signal}: cleaning up`);
  void cleanUp().finally(() => process.exit(1));
};
process.once('SIGINT', () => interrupted('SIGINT'));
process.once('SIGTERM', () => interrupted('SIGTERM'));
try {
  exitCode = (await main()) ? 0 : 1;
} catch (error) {
  console.error(error);
  exitCode = 1;
}
await cleanUp();
process.exit(exitCode);
