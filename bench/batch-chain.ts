import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixed, printTable, type ScratchDatabase, sleep, waitForCount } from './support.ts';

/**
 * Phase 3 of bench:batch: what one step of a chain costs the database. A batch of `n` dependent
 * `diagnostics.echo` items (each takes the previous one's value by `$ref:`) runs on a server whose
 * every statement is counted (bench/count-statements.mjs, loaded into the server process); the
 * statements and rows returned per item must not grow with `n` (no re-reading all items per step).
 * Everything the server sends meanwhile is counted, its background statements (pg-boss maintenance
 * and polls, the reconciler) too; their idle rate before each chain is shown beside.
 */

export interface ChainServer {
  url: string;
  token: string;
}

interface Counts {
  statements: number;
  rows: number;
}

export interface ChainRun {
  items: number;
  seconds: number;
  statements: number;
  rows: number;
  background: number;
}

const ENDED = `('COMPLETED', 'FAILED', 'CANCELLED')`;

/** Environment for the counted server, and a reader of its totals. */
export function statementCounter() {
  const file = join(tmpdir(), `opsgraph-bench-statements-${process.pid}-${Date.now()}.json`);
  const counter = fileURLToPath(new URL('./count-statements.mjs', import.meta.url));
  const env = {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${counter}`.trim(),
    OPSGRAPH_BENCH_STATEMENTS_FILE: file,
  };
  /** The totals so far (after the next write of the counter, every 50 ms). */
  const read = async (): Promise<Counts> => {
    await sleep(120);
    return JSON.parse(await readFile(file, 'utf8')) as Counts;
  };
  return { env, read };
}

/** A chain of `n` echo items: c0 ← c1 ← … each taking the previous one's value. */
export function chainBatch(n: number, type: string) {
  return Array.from({ length: n }, (_, i) =>
    i === 0
      ? { id: 'c0', type, input: { value: { n: 0, tag: 'chain' } } }
      : { id: `c${i}`, type, input: { value: `$ref:c${i - 1}.value` }, dependsOn: [`c${i - 1}`] },
  );
}

/** Runs one chain of `n` items to its end and counts what the server sent meanwhile. */
export async function runChain(
  db: ScratchDatabase,
  read: () => Promise<Counts>,
  submit: (n: number) => Promise<string>,
  n: number,
  idleMs: number,
): Promise<ChainRun> {
  const idleFrom = await read();
  const idleStart = performance.now();
  await sleep(idleMs);
  const idleTo = await read();
  const perMs = (idleTo.statements - idleFrom.statements) / (performance.now() - idleStart);
  const before = await read();
  const t = performance.now();
  const id = await submit(n);
  // Progress = items ended, plus one once the batch has ended.
  const done = await waitForCount(
    db.pool,
    `SELECT (SELECT count(*) FROM "Operation" WHERE "batchId" = $1 AND status IN ${ENDED})::int
          + (SELECT count(*) FROM "Operation" WHERE id = $1 AND status IN ${ENDED})::int AS n`,
    [id],
    n + 1,
    { everyMs: 20, stallMs: 60_000, timeoutMs: 1_800_000 },
  );
  const ms = performance.now() - t;
  if (done.stalled) throw new Error(`the chain of ${n} did not end`);
  const { rows } = await db.pool.query<{ status: string }>(
    `SELECT status::text FROM "Operation" WHERE id = $1`,
    [id],
  );
  if (rows[0]?.status !== 'COMPLETED') throw new Error(`the chain of ${n} ended ${rows[0]?.status}`);
  const after = await read();
  return {
    items: n,
    seconds: ms / 1000,
    statements: after.statements - before.statements,
    rows: after.rows - before.rows,
    background: perMs * ms,
  };
}

export function printChain(runs: ChainRun[]): void {
  printTable(
    'Chain: statements the server process sent while a chain of dependent items ran (submission, ' +
      'coordinator, workers and background work), per item; background = its idle rate before the ' +
      'chain × its time; rows = rows those statements returned',
    ['items', 'total s', 'ms/item', 'statements', 'statements/item', 'of which background', 'rows/item'],
    runs.map((run) => [
      String(run.items),
      fixed(run.seconds, 2),
      fixed((run.seconds * 1000) / run.items, 1),
      String(run.statements),
      fixed(run.statements / run.items, 1),
      `~${fixed(run.background / run.items, 1)}`,
      fixed(run.rows / run.items, 1),
    ]),
  );
}
