import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../src/db/migrate.ts';
import { adminQuery } from '../test/support/db.ts';
import { ADMIN_DATABASE_URL, databaseUrl } from '../test/support/services.ts';

/**
 * What the benchmarks share: scratch databases, clean-up that also runs on errors and Ctrl-C,
 * command-line numbers, bounded concurrency, percentiles and a plain-text table.
 */

// ---------------------------------------------------------------- clean-up

type Closer = () => Promise<unknown> | unknown;
const closers: Closer[] = [];
let cleaning: Promise<void> | undefined;

/**
 * Registers clean-up to run in reverse order when the benchmark ends, fails or is interrupted.
 * Returns a function that runs it now instead (at most once) and unregisters it.
 */
export function defer(close: Closer): () => Promise<void> {
  let done: Promise<void> | undefined;
  const run = () => {
    done ??= (async () => {
      const index = closers.indexOf(run);
      if (index >= 0) closers.splice(index, 1);
      await close();
    })();
    return done;
  };
  closers.push(run);
  return run;
}

function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    while (closers.length > 0) {
      const close = closers.pop()!;
      await Promise.resolve()
        .then(close)
        .catch((error: Error) => {
          process.exitCode = 1;
          console.error(`clean-up failed: ${error.message}`);
        });
    }
  })();
  return cleaning;
}

/** Runs a benchmark's main function, cleans up whatever happens, and exits 0 only on success. */
export async function runBench(main: () => Promise<void>): Promise<never> {
  let aborted = false;
  const abort = (why: string, error?: unknown) => {
    if (error) console.error(error);
    console.error(`\n${why}: cleaning up`);
    aborted = true;
    process.exitCode = 1;
    void cleanUp().finally(() => process.exit(1));
  };
  process.once('SIGINT', () => abort('interrupted'));
  process.once('SIGTERM', () => abort('terminated'));
  process.once('uncaughtException', (error) => abort('uncaught exception', error));
  try {
    await main();
  } catch (error) {
    if (!aborted) console.error(error); // after an abort, failures are its echoes
    process.exitCode = 1;
  }
  await cleanUp();
  // Keep-alive sockets and timers of libraries would otherwise hold the process open.
  process.exit(process.exitCode ?? 0);
}

// ---------------------------------------------------------------- databases

/** A database created for one benchmark run on the server of the admin URL; dropped at the end. */
export interface ScratchDatabase {
  name: string;
  url: string;
  /** A small pool for the benchmark's own queries (waiting for counts, reading timestamps). */
  pool: pg.Pool;
  drop(): Promise<void>;
}

/**
 * Creates `opsgraph_bench_<label>_<random>` (a prefix the test suite's own clean-up leaves alone),
 * applies opsgraph's migrations when asked, and registers its drop with `defer`.
 */
export async function createScratchDatabase(
  label: string,
  options: { migrate: boolean },
): Promise<ScratchDatabase> {
  const name = `opsgraph_bench_${label}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  const pool = new pg.Pool({ connectionString: databaseUrl(name), max: 2 });
  pool.on('error', () => {}); // a connection the drop below terminates
  const drop = defer(async () => {
    await pool.end();
    await dropWhenIdle(name);
  });
  const url = databaseUrl(name);
  try {
    if (options.migrate) await migrate(url);
  } catch (error) {
    await drop();
    throw error;
  }
  return { name, url, pool, drop };
}

/**
 * Drops a database once the connections of what used it have closed (up to 5 s), so no client
 * sees its connection terminated by the forced drop.
 */
async function dropWhenIdle(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const { rows } = await admin.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
        [name],
      );
      if (rows[0]?.n === 0) break;
      await sleep(50);
    }
  } finally {
    await admin.end();
  }
  await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

/** How far `waitForCount` got. */
export interface CountResult {
  n: number;
  /** True when the count stopped growing for `stallMs` before reaching the target. */
  stalled: boolean;
}

/**
 * Polls `sql` (one row with an integer column `n`) every `everyMs` until n ≥ target. Gives up,
 * returning `stalled`, when n has not grown for `stallMs`; throws after `timeoutMs`.
 */
export async function waitForCount(
  pool: pg.Pool,
  sql: string,
  values: unknown[],
  target: number,
  { everyMs = 20, stallMs = Number.POSITIVE_INFINITY, timeoutMs = 120_000 } = {},
): Promise<CountResult> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(sql, values);
    const n = rows[0]?.n ?? 0;
    if (n >= target) return { n, stalled: false };
    if (n !== last) {
      last = n;
      lastChange = Date.now();
    } else if (Date.now() - lastChange >= stallMs) {
      return { n, stalled: true };
    }
    if (Date.now() > deadline) throw new Error(`timed out at ${n} of ${target}: ${sql}`);
    await sleep(everyMs);
  }
}

/**
 * Server environment for benchmarks: one bench user starts far more than a user may by default
 * (OPSGRAPH_QUOTA_*), so the limits are lifted; the quota check itself still runs on every start.
 */
export const BENCH_QUOTAS = {
  OPSGRAPH_QUOTA_MAX_ACTIVE: '10000000',
  OPSGRAPH_QUOTA_STARTS_PER_MINUTE: '10000000',
};

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves as `promise` does, or rejects naming `what` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- arguments and concurrency

/**
 * Reads the command line: integer options (`--n 123`) with a default and a minimum, and choice
 * options (`--raw plain`) whose first choice is the default. Unknown options are an error.
 */
export function readArgs<I extends string, C extends string = never>(
  ints: Record<I, { default: number; min: number }>,
  choices: Record<C, readonly string[]> = {} as Record<C, readonly string[]>,
): Record<I, number> & Record<C, string> {
  const fail = (message: string): never => {
    console.error(message);
    process.exit(2);
  };
  const names = [...Object.keys(ints), ...Object.keys(choices)];
  let values: Record<string, string | boolean | undefined> = {};
  try {
    ({ values } = parseArgs({
      options: Object.fromEntries(names.map((name) => [name, { type: 'string' as const }])),
      strict: true,
    }));
  } catch (error) {
    fail(`${(error as Error).message}; options: ${names.map((name) => `--${name}`).join(' ')}`);
  }
  const result: Record<string, number | string> = {};
  for (const [name, spec] of Object.entries(ints) as [I, { default: number; min: number }][]) {
    const raw = values[name];
    const value = raw === undefined ? spec.default : Number(raw);
    if (!Number.isInteger(value) || value < spec.min) {
      fail(`--${name} must be an integer ≥ ${spec.min} (got ${String(raw)})`);
    }
    result[name] = value;
  }
  for (const [name, allowed] of Object.entries(choices) as [C, readonly string[]][]) {
    const value = String(values[name] ?? allowed[0]);
    if (!allowed.includes(value)) fail(`--${name} must be one of ${allowed.join(', ')}`);
    result[name] = value;
  }
  return result as Record<I, number> & Record<C, string>;
}

/** Calls `task(i)` for i in 0…count−1 with at most `concurrency` in flight; results by index. */
export async function inParallel<T>(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return results;
}

// ---------------------------------------------------------------- statistics and output

/** The p-th percentile (nearest rank) of the values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export const median = (values: readonly number[]): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/** A number with a fixed count of decimals (`–` for NaN). */
export const fixed = (value: number, digits = 1): string =>
  Number.isNaN(value) ? '–' : value.toFixed(digits);

/** Prints a table with a title; numeric-looking cells are right-aligned. */
export function printTable(title: string, headers: string[], rows: string[][]): void {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const numeric = /^[-+]?[\d.,]+$/;
  const line = (cells: string[]) =>
    cells
      .map((cell, column) =>
        numeric.test(cell) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!),
      )
      .join('  ')
      .trimEnd();
  console.log(`\n${title}`);
  console.log(line(headers));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const row of rows) console.log(line(row));
}

// ---------------------------------------------------------------- measuring

/** mulberry32: a small seeded PRNG, uniform in [0, 1), so a run's workload can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc (NaN where there is none). */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ ticks
  } catch {
    return Number.NaN;
  }
}
