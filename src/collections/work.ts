import type { RunContext } from '../operations/registry.ts';
import { acquire, type CollectionRow, release, stillHeld } from './store.ts';

type Tx = Parameters<Parameters<RunContext['db']['$transaction']>[0]>[0];

/** How far a collection operation has got, in documents. */
export interface Tally {
  done: number;
  total: number;
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

const why = (signal: AbortSignal, error: unknown) =>
  signal.aborted
    ? signal.reason === 'cancelled'
      ? 'was cancelled'
      : `stopped (${String(signal.reason)})`
    : `failed (${error instanceof Error ? error.message : String(error)})`;

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
    const message = `${what} ${why(ctx.signal, error)} after ${tally.done} of ${tally.total} documents; committed batches were kept`;
    await release(ctx.db, collectionId, ctx.operationId, { incomplete: true, message }).catch((failure) =>
      ctx.logger.warn('could not record the collection status', { error: failure }),
    );
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
 * once the signal fires.
 */
export async function eachBatch<T>(
  ctx: RunContext,
  batches: AsyncIterable<T[]>,
  tally: Tally,
  step: (tx: Tx, batch: T[]) => Promise<void>,
  message: () => string,
): Promise<void> {
  checkpoint(ctx.signal);
  for await (const batch of batches) {
    checkpoint(ctx.signal);
    await inTransaction(ctx, (tx) => step(tx, batch));
    tally.done += batch.length;
    ctx.progress({ current: tally.done, total: tally.total, message: message() });
  }
  checkpoint(ctx.signal);
}

/** One transaction that commits only while this attempt holds the operation. */
export const inTransaction = <T>(ctx: RunContext, body: (tx: Tx) => Promise<T>): Promise<T> =>
  ctx.db.$transaction(async (tx) => {
    await stillHeld(tx, ctx.operationId, ctx.claimId);
    return body(tx);
  }, TX_OPTIONS);

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
    tally.done += removed;
    ctx.progress({ current: tally.done, total: Math.max(tally.total, tally.done), message: message() });
  }
}
