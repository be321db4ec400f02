import pg from 'pg';
import { directTransaction, executorOf, type SqlExecutor } from '../db/direct.ts';
import { poolOf } from '../db/prisma.ts';
import { safeFailure } from '../operations/failure.ts';
import type { RunContext } from '../operations/registry.ts';
import { binaryToLiteral } from './prepare.ts';
import {
  acquire,
  type BatchChecks,
  ClaimLostError,
  type CollectionRow,
  claimLost,
  heldCheck,
  release,
  stillHeld,
} from './store.ts';

type Tx = SqlExecutor;

/** How far a collection operation has got, in documents. */
export interface Tally {
  done: number;
  total: number;
  /** Set once a transaction of this operation changed the collection. */
  changed?: boolean;
}

/** Batch transactions may wait this long for a connection and run this long. */
const TX_OPTIONS = { maxWait: 10_000, timeout: 120_000 };

/** Thrown at a batch boundary once the handler's signal has fired. */
export class StoppedError extends Error {
  override name = 'StoppedError';
  readonly code = 'STOPPED';
}

function checkpoint(signal: AbortSignal): void {
  if (signal.aborted) throw new StoppedError(`stopped: ${String(signal.reason)}`);
}

/** Why the work stopped, in words; null when another attempt of this operation holds it now. */
async function why(ctx: RunContext, error: unknown): Promise<string | null> {
  let cancelled = ctx.signal.aborted && ctx.signal.reason === 'cancelled';
  if (error instanceof ClaimLostError) {
    // The cancel can reach the database before its message reaches this process.
    const [row] = await ctx.db.$queryRawUnsafe<{ status: string }[]>(
      `SELECT status::text AS status FROM "Operation" WHERE id = $1::uuid`,
      ctx.operationId,
    );
    if (row?.status === 'PENDING' || row?.status === 'PROCESSING') return null;
    cancelled ||= row?.status === 'CANCELLED';
  }
  if (cancelled) return 'was cancelled';
  if (ctx.signal.aborted) return `stopped (${String(ctx.signal.reason)})`;
  return `failed (${safeFailure(error).message})`;
}

/**
 * Runs `work` as the one writer of a collection. When it finishes the collection is READY (or
 * EMPTY); when it stops early (cancelled, timed out, failed) the collection is INCOMPLETE, keeps
 * every committed batch, and its status message says how far the operation got.
 */
export async function onCollection<T>(
  ctx: RunContext,
  collectionId: string,
  what: string,
  work: (collection: CollectionRow, tally: Tally) => Promise<T>,
  finished: (result: T, tally: Tally) => string,
): Promise<T> {
  const collection = await acquire(ctx.db, collectionId, ctx.operationId, `${what} in progress`);
  const tally: Tally = { done: 0, total: 0 };
  let result: T;
  try {
    result = await work(collection, tally);
  } catch (error) {
    const reason = await why(ctx, error).catch(() => 'stopped');
    if (reason === null) throw error; // a newer attempt of this operation holds the collection
    // Stopped before changing anything (refused, or cancelled early): the collection is as it was.
    const message = tally.changed
      ? `${what} ${reason} after ${tally.done} of ${tally.total} documents; committed batches were kept`
      : `${what} ${reason} before changing anything`;
    await release(ctx.db, collectionId, ctx.operationId, {
      incomplete: tally.changed === true,
      message,
    }).catch((failure) => ctx.logger.warn('could not record the collection status', { error: failure }));
    throw error;
  }
  await release(ctx.db, collectionId, ctx.operationId, {
    incomplete: false,
    message: finished(result, tally),
  });
  return result;
}

/**
 * Applies `step` to each batch in its own transaction, which commits only while this attempt
 * holds the operation; reports progress after each batch and stops at the next batch boundary
 * once the signal fires. The next batch is read and prepared while the current one is in the
 * database (see `readAhead`).
 */
export async function eachBatch<B extends { readonly length: number }>(
  ctx: RunContext,
  batches: AsyncIterable<B>,
  tally: Tally,
  step: (tx: Tx, batch: B) => Promise<void>,
  message: () => string,
  /** The batches build something searches do not see yet (a reindex before its switch). */
  options: { unseen?: boolean } = {},
): Promise<void> {
  checkpoint(ctx.signal);
  for await (const batch of readAhead(batches)) {
    checkpoint(ctx.signal);
    await batchTransaction(ctx, (tx) => step(tx, batch));
    committed(ctx, tally, batch, message, options);
  }
  checkpoint(ctx.signal);
}

/** Counts a committed batch and reports the progress. */
function committed(
  ctx: RunContext,
  tally: Tally,
  batch: { readonly length: number },
  message: () => string,
  options: { unseen?: boolean },
): void {
  if (!options.unseen) tally.changed = true;
  tally.done += batch.length;
  ctx.progress({ current: tally.done, total: tally.total, message: message() });
}

/**
 * `eachBatch` for a step that is one statement ending with its own checks (`writeBatch`): each
 * batch is that statement alone, its own transaction, and the next one is sent on the same
 * connection as soon as it is prepared, behind the one in the database, so that the database goes
 * from batch to batch without waiting for this process (under load, each round trip waited for
 * it to get the CPU; there were 3 a batch). `sequence` keeps them in order: a batch commits only
 * after the one before it did. At most one batch waits behind the one running (with the one
 * `readAhead` prepares, three in memory); when a batch fails, the one behind it fails too (its order
 * check) and is awaited before the error is thrown.
 *
 * The connection is one of its own for the whole loop, outside the worker pool (which the progress
 * writes meanwhile use), pipelined and with the settings `batchTransaction` gives each of its
 * transactions (`onBatchConnection`). Without the driver's pool (a client made otherwise), each
 * batch is sent on its own once the one before has committed.
 */
export async function eachStatement<B extends { readonly length: number }>(
  ctx: RunContext,
  batches: AsyncIterable<B>,
  tally: Tally,
  step: (db: Tx, batch: B, checks: BatchChecks) => Promise<void>,
  message: () => string,
): Promise<void> {
  checkpoint(ctx.signal);
  await onBatchConnection(ctx, async (db, pipelined) => {
    let sent: Promise<void> | undefined; // the last batch sent, counted once it has committed
    let sequence = 0;
    try {
      for await (const batch of readAhead(batches)) {
        checkpoint(ctx.signal);
        const checks = {
          operationId: ctx.operationId,
          claimId: ctx.claimId,
          sequence: pipelined ? sequence : null,
        };
        sequence += 1;
        const before = sent;
        sent = fenced(ctx, step(db, batch, checks)).then(() => committed(ctx, tally, batch, message, {}));
        sent.catch(ignore); // awaited below, or in `finally` when the one before fails
        if (!pipelined) await sent;
        await before;
      }
      await sent;
    } finally {
      await sent?.catch(ignore);
    }
  });
  checkpoint(ctx.signal);
}

/**
 * Runs `loop` on a connection of its own (see `eachStatement`) in the driver's pipeline mode:
 * a statement goes on the wire when it is made, not when the one before has answered; `pipelined`
 * is false where there is no such connection: without the driver's pool, or when
 * `LOAD_CONNECTIONS` loads of this pool already have one (then it runs on the workers' pool).
 */
async function onBatchConnection(
  ctx: RunContext,
  loop: (db: Tx, pipelined: boolean) => Promise<void>,
): Promise<void> {
  const pool = poolOf(ctx.db);
  const onPool = () => loop(withLiterals(ctx.db), false);
  if (!pool) return onPool();
  return onLoadConnection(pool, (db) => loop(db, true), onPool);
}

/**
 * Loads of one pool that hold a pipelined connection of their own at once. Those connections are
 * beside the pool's (`OPSGRAPH_WORKER_POOL_SIZE`), so their number is bounded: further loads run
 * their batches on the pool, one after the other, as correct but without the overlap. On two
 * cores, two loads already keep PostgreSQL busy.
 */
export const LOAD_CONNECTIONS = 2;
const loadConnections = new WeakMap<pg.Pool, number>();

/**
 * Runs `pipelined` on a new pipelined connection made with `pool`'s settings and the batch session
 * settings (`BATCH_SETTINGS`), closed after it; or `otherwise` when `LOAD_CONNECTIONS` of them are
 * open for this pool.
 */
export async function onLoadConnection<T>(
  pool: pg.Pool,
  pipelined: (db: SqlExecutor) => Promise<T>,
  otherwise: () => Promise<T>,
): Promise<T> {
  const open = loadConnections.get(pool) ?? 0;
  if (open >= LOAD_CONNECTIONS) return otherwise();
  loadConnections.set(pool, open + 1);
  const client = new pg.Client({
    ...pool.options,
    password: pool.options.password, // not enumerable: the pool hides it
    pipeline: true,
    application_name: LOAD_APPLICATION_NAME,
    options: [pool.options.options, ...BATCH_SETTINGS].filter(Boolean).join(' '),
  });
  // A connection that breaks emits 'error': the failing statement reports it.
  client.on('error', ignore);
  try {
    await client.connect();
    return await pipelined(executorOf(client));
  } finally {
    loadConnections.set(pool, (loadConnections.get(pool) ?? 1) - 1);
    await client.end().catch(ignore);
  }
}

/** `application_name` of a load's own connection, as `pg_stat_activity` shows it. */
export const LOAD_APPLICATION_NAME = 'opsgraph load';

/**
 * The session of `onBatchConnection`: what `batchTransaction` sets for each of its transactions
 * (the statement timeout, commits that do not wait for the disk: see there why that is safe), and
 * the start of `opsgraph_batch_in_order`'s count.
 */
const BATCH_SETTINGS = [
  `-c statement_timeout=${TX_OPTIONS.timeout}`,
  '-c synchronous_commit=off',
  '-c opsgraph.batches=0',
];

const ignore = () => {};

/**
 * Yields what `source` yields, asking it for the next item as soon as it has handed one out, so
 * that reading, hashing and chunking batch N+1 overlap with batch N's transaction. Never more than
 * one item ahead (memory stays at two batches). When the consumer stops early, the item in the
 * making is awaited (its failure ignored) before the source is closed, so nothing reads on after.
 */
export async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  const iterator = source[Symbol.asyncIterator]();
  let next = iterator.next();
  let finished = false;
  try {
    for (;;) {
      const current = await next;
      if (current.done) {
        finished = true;
        return;
      }
      next = iterator.next();
      // Seen by the next `await next` if the consumer asks; ignored in `finally` if it stops.
      next.catch(() => {});
      yield current.value;
    }
  } finally {
    if (!finished) {
      await next.catch(() => {});
      await iterator.return?.();
    }
  }
}

/** Maps each item of an async iterable (a batch of a source to its prepared form). */
export async function* mapBatches<T, U>(
  source: AsyncIterable<T>,
  map: (item: T) => U | Promise<U>,
): AsyncGenerator<U, void, undefined> {
  for await (const item of source) yield await map(item);
}

/**
 * One transaction that commits only while this attempt holds the operation. It runs on the
 * driver's connection directly where there is one: a batch's parameters are megabytes, which
 * Prisma's raw query path would serialize to JSON and parse back before sending.
 */
export function inTransaction<T>(ctx: RunContext, body: (tx: Tx) => Promise<T>): Promise<T> {
  return transaction(ctx, async (tx) => {
    await stillHeld(tx, ctx.operationId, ctx.claimId);
    return body(tx);
  });
}

function transaction<T>(ctx: RunContext, body: (tx: Tx) => Promise<T>): Promise<T> {
  const pool = poolOf(ctx.db);
  return pool
    ? directTransaction(pool, { timeoutMs: TX_OPTIONS.timeout }, body)
    : ctx.db.$transaction(body, TX_OPTIONS);
}

/**
 * A batch's transaction: like `inTransaction`, but the operation row is locked last, by a check
 * sent with the COMMIT in one round trip (`heldCheck`). The next batch starts as soon as the one before has committed; locked first, the
 * previous batch's progress write (an UPDATE of that row, sent a moment later) would wait for a
 * whole batch, and the batch after for that write. A cancel committed meanwhile rolls the batch
 * back (ClaimLostError); one that comes during the commit waits for it.
 *
 * Its COMMIT does not wait for the disk (synchronous_commit off, this transaction only): a batch
 * is work the operation does again when it is lost. Everything that tells of it commits
 * synchronously afterwards and so flushes it too: the progress event that counts it, the next
 * synchronous write of the collection, the operation's completion. A database crash can take
 * only batches that nothing durable mentions yet; the operation is then still PROCESSING, is
 * retried, and its retry re-reads the source and adds what is missing (unchanged documents are
 * skipped by their hash). Waiting for the WAL flush at each of the 100 commits of 10,000
 * documents was 3–16 ms a batch, with the database idle.
 */
async function batchTransaction(ctx: RunContext, body: (tx: Tx) => Promise<void>): Promise<void> {
  const pool = poolOf(ctx.db);
  await fenced(
    ctx,
    pool
      ? // The claim is checked in the COMMIT's round trip.
        directTransaction(
          pool,
          {
            timeoutMs: TX_OPTIONS.timeout,
            synchronousCommit: false,
            commitWith: heldCheck(ctx.operationId, ctx.claimId),
          },
          body,
        )
      : ctx.db.$transaction(async (tx) => {
          await body(withLiterals(tx));
          await stillHeld(tx, ctx.operationId, ctx.claimId);
        }, TX_OPTIONS),
  );
}

/**
 * Waits for a batch's write; its error as a ClaimLostError when the claim check failed
 * (`claimLost`), or when the batch failed while another attempt held the operation (its rows may
 * collide with ours).
 */
async function fenced(ctx: RunContext, write: Promise<unknown>): Promise<void> {
  try {
    await write;
  } catch (failure) {
    const error = claimLost(failure);
    if (!(error instanceof ClaimLostError) && !(await holds(ctx))) {
      throw new ClaimLostError('the operation was cancelled or taken over', { cause: error });
    }
    throw error;
  }
}

/** Prisma's raw queries send every parameter as text: a batch's binary arrays go as literals. */
const withLiterals = (tx: Tx): Tx => ({
  $queryRawUnsafe: <T>(query: string, ...values: unknown[]) =>
    tx.$queryRawUnsafe<T>(query, ...values.map(literalOf)),
  $executeRawUnsafe: (query: string, ...values: unknown[]) =>
    tx.$executeRawUnsafe(query, ...values.map(literalOf)),
});
const literalOf = (value: unknown) => (Buffer.isBuffer(value) ? binaryToLiteral(value) : value);

/** Whether this attempt still holds the operation; true when that cannot be told. */
const holds = (ctx: RunContext): Promise<boolean> =>
  stillHeld(ctx.db, ctx.operationId, ctx.claimId).then(
    () => true,
    (error) => !(error instanceof ClaimLostError),
  );

/** Repeats `removeOne` (one batch per call, returning how many it removed) until nothing is left. */
export async function removeAll(
  ctx: RunContext,
  tally: Tally,
  removeOne: (tx: Tx) => Promise<number>,
  message: () => string,
): Promise<void> {
  for (;;) {
    checkpoint(ctx.signal);
    const removed = await inTransaction(ctx, removeOne);
    if (removed === 0) return;
    tally.changed = true;
    tally.done += removed;
    ctx.progress({ current: tally.done, total: Math.max(tally.total, tally.done), message: message() });
  }
}
